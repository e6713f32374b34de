"""The outbox: tracking events go to a Redis stream (one entry per signal, a
JSON list of records) and, in the same round trip, the live hash of each task
is updated when the event outranks what it holds (one Lua call: XADD + HSETs).
Nothing here talks to PostgreSQL, so a task never waits for it. If Redis
cannot take the entry, it is spooled to a local file (spool.py)."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import redis
import structlog
from redis.backoff import NoBackoff
from redis.retry import Retry

from orchestrator.tracking.spool import Spool
from orchestrator.tracking.status_view import summary

log = structlog.get_logger(__name__)

TASK_KEY = "aiworker:task:{task_id}"
PLAN_KEY = "aiworker:tracking:pipeline:{pipeline_id}"
BREAKER_SECONDS = 1.0  # after a Redis error, spool directly for this long instead of waiting on Redis again

# KEYS[1] the stream, KEYS[2..] live hashes; ARGV[1] the entry, ARGV[2] TTL,
# ARGV[3] JSON list of [rank, at, {field: value}] aligned with KEYS[2..].
_EMIT = """
redis.call('XADD', KEYS[1], '*', 'e', ARGV[1])
local ttl = tonumber(ARGV[2])
local updates = cjson.decode(ARGV[3])
for i, u in ipairs(updates) do
  local key = KEYS[i + 1]
  local rank, at = tonumber(u[1]), tonumber(u[2])
  local cur = redis.call('HMGET', key, 'rank', 'at')
  local crank, cat = tonumber(cur[1]), tonumber(cur[2]) or 0
  if (not crank) or rank > crank or (rank == crank and at >= cat) then
    local args = {'rank', u[1], 'at', u[2]}
    for k, v in pairs(u[3]) do
      args[#args + 1] = k
      args[#args + 1] = v
    end
    redis.call('HSET', key, unpack(args))
  end
  redis.call('EXPIRE', key, ttl)
end
return 1
"""


def task_key(task_id: str) -> str:
    return TASK_KEY.format(task_id=task_id)


def plan_key(pipeline_id: str) -> str:
    return PLAN_KEY.format(pipeline_id=pipeline_id)


def live_fields(record: dict[str, Any]) -> tuple[str, list[Any]] | None:
    """The live hash key and update of a record (seed 004 §4.1.2), or None."""
    if record.get("kind") == "task":
        fields = {k: str(record[k]) for k in ("status", "task_name", "pipeline_id", "stage_index", "worker",
                                              "retry_count", "error_type", "runtime") if record.get(k) is not None}
        # The result (or error) summary too, so a stage that just finished shows
        # its outcome before the drainer has written the row.
        outcome = record.get("result") if record.get("status") == "SUCCESS" else \
            record.get("error_message") or record.get("retry_reason")
        if outcome is not None:
            fields["summary"] = summary(outcome)
        return task_key(record["task_id"]), [str(record["rank"]), repr(float(record["at"])), fields]
    if record.get("kind") == "pipeline":
        fields = {"pipeline": record["pipeline"], "stage_count": str(record["stage_count"]),
                  "stages": json.dumps(record["stages"]), "created": repr(float(record["at"]))}
        return plan_key(record["pipeline_id"]), ["0", repr(float(record["at"])), fields]
    return None


class Outbox:
    def __init__(self, redis_url: str, stream: str, live_ttl: int, spool: Spool) -> None:
        self.redis_url = redis_url
        self.stream = stream
        self.live_ttl = live_ttl
        self.spool = spool
        self._client: tuple[int, redis.Redis, Any] | None = None
        self._broken_until = 0.0

    def client(self) -> redis.Redis:
        return self._connection()[1]

    def _connection(self) -> tuple[int, redis.Redis, Any]:
        if self._client is None or self._client[0] != os.getpid():  # a forked pool child makes its own
            client = redis.Redis.from_url(self.redis_url, socket_timeout=2, socket_connect_timeout=2,
                                          retry=Retry(NoBackoff(), 1))
            self._client = (os.getpid(), client, client.register_script(_EMIT))
        return self._client

    def emit(self, records: list[dict[str, Any]]) -> None:
        """Never raises: an entry Redis cannot take is spooled (and an entry
        that cannot even be spooled is logged in full, masked as stored)."""
        entry = json.dumps(records, separators=(",", ":"), default=str)
        if time.monotonic() >= self._broken_until:
            try:
                self._send(entry, records)
                return
            except redis.RedisError as exc:
                self._broken_until = time.monotonic() + BREAKER_SECONDS
                log.warning("tracking_outbox_unavailable", error=str(exc), spool=str(self.spool.directory))
        try:
            self.spool.append(entry)
        except OSError as exc:
            log.error("tracking_event_dropped", error=str(exc), entry=entry)

    def _send(self, entry: str, records: list[dict[str, Any]]) -> None:
        _, _, script = self._connection()
        keys, updates = [self.stream], []
        for record in records:
            live = live_fields(record)
            if live is not None:
                keys.append(live[0])
                updates.append(live[1])
        script(keys=keys, args=[entry, self.live_ttl, json.dumps(updates)])

    def push_raw(self, entries: list[str]) -> None:
        """Re-queues spooled entries (no live update: they are old news)."""
        with self.client().pipeline(transaction=False) as pipe:
            for entry in entries:
                pipe.xadd(self.stream, {"e": entry})
            pipe.execute()
