"""Per-app tracking state: settings, the masker, the outbox, the start times of
running tasks (for runtimes of failures), the STARTED records held back, and
the worker's drainer thread."""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

import structlog

from orchestrator import keys
from orchestrator.masking import masker_for
from orchestrator.settings import OrchestratorSettings
from orchestrator.tracking.recording.outbox import Outbox
from orchestrator.tracking.recording.spool import Spool

log = structlog.get_logger(__name__)

# A task's STARTED record waits this long in its process: a task done sooner sends
# it with its outcome in one round trip; a longer one's is sent by a timer thread.
HOLD_STARTED_SECONDS = 0.05


class Tracker:
    def __init__(self, settings: OrchestratorSettings) -> None:
        self.settings = settings
        self.masker = masker_for(settings)
        self.spool = Spool(settings.tracking_spool_dir)
        self.outbox = Outbox(settings.redis_url, settings.tracking_outbox, settings.tracking_live_ttl, self.spool)
        self.started_at: dict[str, float] = {}  # task_id → monotonic start, in the process running it
        self.drainer: Any = None  # a DrainerThread in a worker's main process
        self.hostname: str | None = None  # the worker's node name, for events its main process reports
        self._held: dict[str, tuple[float, dict[str, Any]]] = {}
        self._flusher: tuple[int, threading.Condition] | None = None

    def emit(self, records: list[dict[str, Any]]) -> None:
        if records:
            self.outbox.emit(records)

    # -- STARTED, held back briefly -------------------------------------------------
    def hold_started(self, task_id: str, record: dict[str, Any]) -> None:
        self.started_at[task_id] = time.monotonic()
        cond = self._condition()
        with cond:
            self._held[task_id] = (time.monotonic() + HOLD_STARTED_SECONDS, record)
            cond.notify()

    def finish(self, task_id: str | None, records: list[dict[str, Any]]) -> None:
        """Emits a task's outcome records, with its STARTED if still held."""
        held = None
        if task_id and self._flusher is not None:
            with self._flusher[1]:
                held = self._held.pop(task_id, None)
        self.emit(([held[1]] if held else []) + records)

    def _condition(self) -> threading.Condition:
        if self._flusher is None or self._flusher[0] != os.getpid():  # per process: pool children fork
            self._held = {}
            self._flusher = (os.getpid(), threading.Condition())
            threading.Thread(
                target=self._flush_loop, args=(self._flusher[1],), name="tracking-started", daemon=True
            ).start()
        return self._flusher[1]

    def _flush_loop(self, cond: threading.Condition) -> None:
        while True:
            with cond:
                while not self._held:
                    cond.wait()
                now = time.monotonic()
                due = min(deadline for deadline, _ in self._held.values())
                if due > now:
                    cond.wait(due - now)
                    continue
                expired = [task_id for task_id, (deadline, _) in self._held.items() if deadline <= now]
                records = [self._held.pop(task_id)[1] for task_id in expired]
            self.emit(records)

    def runtime(self, task_id: str | None) -> float | None:
        started = self.started_at.pop(task_id, None) if task_id else None
        return None if started is None else time.monotonic() - started

    def links_after(self, task_id: str) -> list[tuple[str, str]]:
        """The pipeline stages after a task, from the live plan (for failures Celery
        reports without the task's chain). Best effort: [] when unknown."""
        try:
            client = self.outbox.client()
            pipeline_id, stage = client.hmget(keys.task_live(task_id), "pipeline_id", "stage_index")
            if not pipeline_id or stage is None:
                return []
            stages = client.hget(keys.pipeline_live(pipeline_id.decode()), "stages")
            if not stages:
                return []
            index = int(stage)
            return [
                (s["task_id"], s["task_name"])
                for s in json.loads(stages)
                if s.get("stage_index") is not None and s["stage_index"] > index
            ]
        except Exception as exc:  # noqa: BLE001 - the query view derives SKIPPED anyway
            log.warning("tracking_plan_lookup_failed", task_id=task_id, error=str(exc))
            return []
