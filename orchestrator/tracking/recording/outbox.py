"""The outbox: tracking events go to a Redis stream (one entry per signal, a
JSON list of records) and, in the same round trip, the live state of each
task is updated when the event outranks what it holds (one Lua call): the
task's own hash (docs/decisions/0011-task-status-shapes.md) and its entry `t:<task_id>` in the
pipeline's live hash, beside the pipeline's plan and progress, so a status
read finds every live fact of a pipeline in one hash (orchestrator.keys).
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

from orchestrator import keys
from orchestrator.pipelines.progress import TASK_FIELD_PREFIX
from orchestrator.tracking.pipeline_view import outcome_summary
from orchestrator.tracking.recording.spool import Spool
from orchestrator.tracking.states import STARTED, TERMINAL

log = structlog.get_logger(__name__)

BREAKER_SECONDS = 1.0  # after a Redis error, spool directly for this long instead of waiting on Redis again
PLAN_FIELDS = ("pipeline", "stage_count", "stages", "created")

# KEYS[1] the stream, KEYS[2..] live hashes; ARGV[1] the entry, ARGV[2] TTL, ARGV[3] the
# pipeline live key's prefix, ARGV[4] JSON list aligned with KEYS[2..]:
#   ["task", rank, at, {field: value}, task_id]: a task's state, kept when it outranks the
#       stored one, then copied into its pipeline's hash (found through its pipeline_id)
#   ["plan", {field: value}]: a pipeline's plan, the first one kept (a retry re-publishes
#       the stages from the failed one on)
_EMIT = """
redis.call('XADD', KEYS[1], '*', 'e', ARGV[1])
local ttl = tonumber(ARGV[2])
local updates = cjson.decode(ARGV[4])
for i, u in ipairs(updates) do
  local key = KEYS[i + 1]
  if u[1] == 'plan' then
    for k, v in pairs(u[2]) do
      redis.call('HSETNX', key, k, v)
    end
  else
    local rank, at = tonumber(u[2]), tonumber(u[3])
    local cur = redis.call('HMGET', key, 'rank', 'at')
    local crank, cat = tonumber(cur[1]), tonumber(cur[2]) or 0
    if (not crank) or rank > crank or (rank == crank and at >= cat) then
      local args = {'rank', u[2], 'at', u[3]}
      for k, v in pairs(u[4]) do
        args[#args + 1] = k
        args[#args + 1] = v
      end
      redis.call('HSET', key, unpack(args))
      redis.call('HSETNX', key, 'created', u[3])
      local pipeline_id = redis.call('HGET', key, 'pipeline_id')
      if pipeline_id then
        local flat = redis.call('HGETALL', key)
        local state = {}
        for j = 1, #flat, 2 do
          state[flat[j]] = flat[j + 1]
        end
        local pipeline_key = ARGV[3] .. pipeline_id
        redis.call('HSET', pipeline_key, 'TASK_FIELD_PREFIX' .. u[5], cjson.encode(state))
        redis.call('EXPIRE', pipeline_key, ttl)
      end
    end
  end
  redis.call('EXPIRE', key, ttl)
end
return 1
""".replace("TASK_FIELD_PREFIX", TASK_FIELD_PREFIX)


def live_fields(record: dict[str, Any]) -> tuple[str, list[Any]] | None:
    """The live hash key and update of a record, or None."""
    if record.get("kind") == "task":
        status, at = record.get("status"), repr(float(record["at"]))
        fields = {
            k: str(record[k])
            for k in (
                "status",
                "task_name",
                "pipeline_id",
                "stage_index",
                "worker",
                "queue",
                "retry_count",
                "error_type",
                "runtime",
            )
            if record.get(k) is not None
        }
        if status == STARTED:
            fields["started"] = at
        if status in TERMINAL:
            fields["completed"] = at
        # The outcome's summary too, so a stage that just finished shows it before the
        # drainer has written the row.
        outcome = outcome_summary(status, record.get("result"), record.get("error_message"), record.get("retry_reason"))
        if outcome is not None:
            fields["summary"] = outcome
        return keys.task_live(record["task_id"]), ["task", str(record["rank"]), at, fields, record["task_id"]]
    if record.get("kind") == "pipeline":
        fields = {
            "pipeline": record["pipeline"],
            "stage_count": str(record["stage_count"]),
            "stages": json.dumps(record["stages"]),
            "created": repr(float(record["at"])),
        }
        if record.get("traceparent"):
            fields["traceparent"] = record["traceparent"]
        return keys.pipeline_live(record["pipeline_id"]), ["plan", fields]
    return None


class Outbox:
    def __init__(self, redis_url: str, stream: str, live_ttl: int, spool: Spool) -> None:
        self.redis_url = redis_url
        self.stream = stream
        self.live_ttl = live_ttl
        self.spool = spool
        self._client: tuple[int, redis.Redis, Any] | None = None
        self._broken_until = 0.0
        self._maybe_spooled = True  # files a previous run of this process left count too

    def client(self) -> redis.Redis:
        return self._connection()[1]

    def _connection(self) -> tuple[int, redis.Redis, Any]:
        if self._client is None or self._client[0] != os.getpid():  # a forked pool child makes its own
            client = redis.Redis.from_url(
                self.redis_url, socket_timeout=2, socket_connect_timeout=2, retry=Retry(NoBackoff(), 1)
            )
            self._client = (os.getpid(), client, client.register_script(_EMIT))
        return self._client

    def emit(self, records: list[dict[str, Any]]) -> None:
        """Never raises: an entry Redis cannot take is spooled (and an entry
        that cannot even be spooled is logged in full, masked as stored)."""
        entry = json.dumps(records, separators=(",", ":"), default=str)
        if time.monotonic() >= self._broken_until:
            try:
                self._send(entry, records)
                self._requeue_spool()
                return
            except redis.RedisError as exc:
                self._broken_until = time.monotonic() + BREAKER_SECONDS
                log.warning("tracking_outbox_unavailable", error=str(exc), spool=str(self.spool.directory))
        try:
            self.spool.append(entry)
            self._maybe_spooled = True
        except OSError as exc:
            log.error("tracking_event_dropped", error=str(exc), entry=entry)

    def _requeue_spool(self) -> None:
        """Redis is back: what this process spooled goes to the outbox now, so a process
        with no drainer beside it (the gateway, beat) never leaves events on its disk."""
        if not self._maybe_spooled:
            return
        try:
            moved = self.spool.drain(self.push_raw)
        except (redis.RedisError, OSError) as exc:
            log.warning("tracking_spool_requeue_failed", error=str(exc))
            return
        self._maybe_spooled = False
        if moved:
            log.info("tracking_spool_requeued", entries=moved)

    def _send(self, entry: str, records: list[dict[str, Any]]) -> None:
        _, _, script = self._connection()
        live_keys, updates = [self.stream], []
        for record in records:
            live = live_fields(record)
            if live is not None:
                live_keys.append(live[0])
                updates.append(live[1])
        script(keys=live_keys, args=[entry, self.live_ttl, keys.PIPELINE_LIVE_PREFIX, json.dumps(updates)])

    def push_raw(self, entries: list[str]) -> None:
        """Re-queues spooled entries (no live update: they are old news)."""
        with self.client().pipeline(transaction=False) as pipe:
            for entry in entries:
                pipe.xadd(self.stream, {"e": entry})
            pipe.execute()
