"""The drainer: moves outbox events into PostgreSQL in batches.

Events stay in Redis until PostgreSQL has committed them: a drainer reads
entries through a consumer group (they sit in its pending list), writes them
in one transaction, and only then XACKs and XDELs them. When a write fails the
entries stay pending and are read again, in order, once PostgreSQL answers;
entries of a drainer that died are claimed by another after
`tracking_claim_idle_seconds`. Since every write is an idempotent,
order-independent merge (merge.py), replays and concurrent drainers are safe.
Entries that can never be written (undecodable, rejected by PostgreSQL as
data errors) go to `<outbox>:dead` with the reason, never silently away."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from typing import Any

import redis
import structlog
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DataError, IntegrityError, StatementError

from orchestrator.settings import OrchestratorSettings
from orchestrator.storage.db.engine import engine_for
from orchestrator.tracking.recording.outbox import Outbox
from orchestrator.tracking.recording.spool import Spool
from orchestrator.tracking.recording.writer import write_records

log = structlog.get_logger(__name__)

BLOCK_MS = 1000
LINGER_SECONDS = 0.2  # after a part-full batch, wait this long so the next one is fuller (fewer commits)
SPOOL_EVERY_SECONDS = 5.0
BACKOFF_START, BACKOFF_MAX = 0.2, 5.0
WARN_EVERY_SECONDS = 30.0
STALE_CONSUMER_MS = 3_600_000  # consumers idle this long with nothing pending are forgotten


class PermanentWriteError(Exception):
    """PostgreSQL rejected the data itself: retrying the same batch cannot help."""


def consumer_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Drainer:
    def __init__(
        self,
        client: redis.Redis,
        engine: Engine,
        stream: str,
        group: str,
        *,
        batch_size: int = 500,
        claim_idle_seconds: float = 60.0,
        spool: Spool | None = None,
        outbox: Outbox | None = None,
        consumer: str | None = None,
        linger_seconds: float = LINGER_SECONDS,
    ) -> None:
        self.client = client
        self.engine = engine
        self.stream = stream
        self.dead = f"{stream}:dead"
        self.group = group
        self.consumer = consumer or consumer_name()
        self.batch_size = batch_size
        self.claim_idle_ms = int(claim_idle_seconds * 1000)
        self.spool = spool
        self.outbox = outbox
        self.linger_seconds = linger_seconds
        self._conn: Connection | None = None  # kept across batches: no pool checkout/ping per commit
        self._pending = True  # read our own pending list first (a restart may have left some)
        self._next_claim = 0.0
        self._next_spool = 0.0
        self.written = 0  # events committed by this drainer

    @classmethod
    def from_settings(cls, settings: OrchestratorSettings, **kwargs: Any) -> Drainer:
        client = redis.Redis.from_url(settings.redis_url, socket_timeout=BLOCK_MS / 1000 + 10, socket_connect_timeout=5)
        spool = Spool(settings.tracking_spool_dir)
        outbox = Outbox(settings.redis_url, settings.tracking_outbox, settings.tracking_live_ttl, spool)
        return cls(
            client,
            engine_for(settings.tracking_database_url),
            settings.tracking_outbox,
            settings.tracking_group,
            batch_size=settings.tracking_batch_size,
            claim_idle_seconds=settings.tracking_claim_idle_seconds,
            spool=spool,
            outbox=outbox,
            **kwargs,
        )

    # -- one step ---------------------------------------------------------------
    def ensure_group(self) -> None:
        try:
            self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def step(self, block_ms: int = BLOCK_MS) -> int:
        """Reads one batch and commits it; returns the number of entries done.
        Raises when Redis or PostgreSQL fails (the entries stay pending)."""
        now = time.monotonic()
        if now >= self._next_spool and self.spool is not None and self.outbox is not None:
            self._next_spool = now + SPOOL_EVERY_SECONDS
            moved = self.spool.drain(self.outbox.push_raw)
            if moved:
                log.info("tracking_spool_requeued", entries=moved)
        if now >= self._next_claim:
            self._next_claim = now + max(self.claim_idle_ms / 2000, 1.0)
            self._claim_stale()
        entries = self._read(block_ms)
        if not entries:
            return 0
        self._commit(entries)
        return len(entries)

    def _read(self, block_ms: int) -> list[tuple[str, dict]]:
        try:
            while self._pending:
                entries = self._xread("0", None)
                if entries:
                    return entries
                self._pending = self._has_pending()
            return self._xread(">", block_ms or None)
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self.ensure_group()  # the stream was deleted (e.g. FLUSHDB): start over from its beginning
            return []

    def _xread(self, start: str, block_ms: int | None) -> list[tuple[str, dict]]:
        reply = self.client.xreadgroup(
            self.group, self.consumer, {self.stream: start}, count=self.batch_size, block=block_ms
        )
        if not reply:
            return []
        _, entries = reply[0]
        gone = [entry_id for entry_id, fields in entries if not fields]  # pending, but deleted from the stream
        if gone:
            self.client.xack(self.stream, self.group, *gone)
        return [(_s(entry_id), fields) for entry_id, fields in entries if fields]

    def _has_pending(self) -> bool:
        return bool(self.client.xpending_range(self.stream, self.group, "-", "+", 1, consumername=self.consumer))

    def _claim_stale(self) -> None:
        start = "0-0"
        while True:
            # (not JUSTID: redis-py then drops the cursor from the reply)
            reply = self.client.xautoclaim(
                self.stream, self.group, self.consumer, self.claim_idle_ms, start_id=start, count=self.batch_size
            )
            start, claimed = _s(reply[0]), reply[1]
            if claimed:
                self._pending = True
                log.info("tracking_entries_claimed", entries=len(claimed))
            if start == "0-0":
                break
        for info in self.client.xinfo_consumers(self.stream, self.group):
            name = _s(info["name"])
            if name != self.consumer and not info["pending"] and info.get("idle", 0) > STALE_CONSUMER_MS:
                self.client.xgroup_delconsumer(self.stream, self.group, name)

    def _commit(self, entries: list[tuple[str, dict]]) -> None:
        decoded, dead = [], []
        for entry_id, fields in entries:
            try:
                records = json.loads(fields[b"e"])
                if not isinstance(records, list):
                    raise ValueError("entry is not a list of records")
                decoded.append((entry_id, records))
            except (KeyError, ValueError) as exc:
                dead.append((entry_id, fields, f"undecodable: {exc}"))
        try:
            self._write([r for _, batch in decoded for r in batch])
        except PermanentWriteError:
            for entry_id, records in decoded:  # find the culprits one entry at a time
                try:
                    self._write(records)
                except PermanentWriteError as exc:
                    dead.append((entry_id, {b"e": json.dumps(records).encode()}, str(exc)))
        self._acknowledge([entry_id for entry_id, _ in entries], dead)
        self.written += len(entries) - len(dead)

    def _write(self, records: list[dict[str, Any]]) -> None:
        if self._conn is None:
            self._conn = self.engine.connect()
        try:
            with self._conn.begin():
                write_records(self._conn, records)
        except (DataError, IntegrityError) as exc:
            raise PermanentWriteError(str(exc).splitlines()[0]) from exc
        except StatementError as exc:
            if isinstance(exc.orig, (TypeError, ValueError)):  # a record Python cannot bind
                raise PermanentWriteError(f"{type(exc.orig).__name__}: {exc.orig}") from exc
            self._drop_connection()
            raise
        except Exception:
            self._drop_connection()
            raise

    def _drop_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.invalidate()
                self._conn.close()
            except Exception:  # noqa: BLE001 - it is broken already
                pass
            self._conn = None

    def _acknowledge(self, ids: list[str], dead: list[tuple[str, dict, str]]) -> None:
        with self.client.pipeline(transaction=True) as pipe:
            for entry_id, fields, reason in dead:
                pipe.xadd(self.dead, {**fields, b"reason": reason.encode(), b"id": entry_id.encode()})
            pipe.xack(self.stream, self.group, *ids)
            pipe.xdel(self.stream, *ids)
            pipe.execute()
        for entry_id, _, reason in dead:
            log.error("tracking_entry_dead_lettered", entry=entry_id, reason=reason, stream=self.dead)

    # -- loops --------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Drains until `stop` is set; failures back off and retry forever."""
        delay, failing_since, last_warning, group_ready = BACKOFF_START, None, 0.0, False
        while not stop.is_set():
            try:
                if not group_ready:
                    self.ensure_group()
                    group_ready = True
                done = self.step()
                if 0 < done < self.batch_size and not self._pending:
                    stop.wait(self.linger_seconds)
                if failing_since is not None:
                    log.info("tracking_write_recovered", outage_seconds=round(time.monotonic() - failing_since, 1))
                failing_since, delay = None, BACKOFF_START
            except Exception as exc:  # noqa: BLE001 - Redis or PostgreSQL away: keep the events, retry
                self._pending, group_ready = True, False
                now = time.monotonic()
                if failing_since is None:
                    failing_since = now
                if now - last_warning >= WARN_EVERY_SECONDS:
                    last_warning = now
                    log.warning(
                        "tracking_write_failed",
                        error=f"{type(exc).__name__}: {str(exc).splitlines()[0]}",
                        retry_in=delay,
                    )
                stop.wait(delay)
                delay = min(delay * 2, BACKOFF_MAX)

    def drain_all(self, timeout: float = 60.0) -> int:
        """Steps until the outbox has nothing new or pending (for commands and tests)."""
        self.ensure_group()
        deadline, done = time.monotonic() + timeout, 0
        self._pending = True
        while time.monotonic() < deadline:
            count = self.step(block_ms=0)
            done += count
            if count == 0 and not self._pending:
                return done
        raise TimeoutError(f"outbox not drained after {timeout}s")

    def close(self) -> None:
        """Leaves the group if nothing is pending for us (a new name is used next time)."""
        try:
            pending = self.client.xpending_range(self.stream, self.group, "-", "+", 1, consumername=self.consumer)
            if not pending:
                self.client.xgroup_delconsumer(self.stream, self.group, self.consumer)
        except redis.RedisError:
            pass
        self.client.close()
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
