"""Counting tracking rows, each once: four streams of rows, each read in order
of (time, row key) past its high-water mark and up to `until` (a time every
row before which has landed: exporter.py), each on an index (migration 0007).

    published   task_info by created_at: what a producer published (a submit, a retry, a
                task outside a pipeline). A pipeline's later stages have rows from the
                submit on (their plan) but are published when the stage before them
                succeeds: `completed` counts those.
    started     task_info by started_at: a start (a retry's start moves started_at on, and
                is counted again); the first attempt's queue wait
    completed   task_info by completed_at: the final state, the stage's retries, and the
                publish of the pipeline's next stage
    finished    pipeline_info by finished_at: a pipeline's duration by its final state
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text

from orchestrator.exporter.marks import Mark
from orchestrator.exporter.metrics import RowMetrics

MAX_BATCHES = 20  # per stream per poll: a long catch-up still saves its marks every poll


@dataclass(frozen=True)
class Stream:
    name: str
    table: str
    time: str  # the ordering time column
    key: str  # the tie-breaking unique column
    columns: str  # what the handler reads (alias `t`)
    where: str = "TRUE"

    def query(self, after_key: bool):
        after = f"(t.{self.time}, t.{self.key}) > (:at, :key)" if after_key else f"t.{self.time} > :at"
        return text(
            f"SELECT t.{self.time} AS mark_at, t.{self.key} AS mark_key, {self.columns} FROM {self.table} t "
            f"WHERE {after} AND t.{self.time} <= :until AND ({self.where}) "
            f"ORDER BY t.{self.time}, t.{self.key} LIMIT :limit"
        )


PUBLISHED = Stream(
    "published",
    "task_info",
    "created_at",
    "id",
    "t.queue",
    where="t.pipeline_id IS NULL OR t.parent_task_id IS NULL",
)
# A later stage's message was published as the stage before it succeeded (Celery publishes the
# next link, then records the success): its queue wait runs from there.
STARTED = Stream(
    "started",
    "task_info",
    "started_at",
    "id",
    "t.queue, t.retry_count, t.created_at, t.started_at, "
    "CASE WHEN t.pipeline_id IS NOT NULL AND t.parent_task_id IS NOT NULL AND t.stage_index > 0 "
    "AND t.retry_count = 0 THEN (SELECT max(p.completed_at) FROM task_info p WHERE p.pipeline_id = t.pipeline_id "
    "AND p.stage_index = t.stage_index - 1 AND p.status = 'SUCCESS') END AS previous_done",
)
COMPLETED = Stream(
    "completed",
    "task_info",
    "completed_at",
    "id",
    "t.queue, t.status, t.retry_count, t.pipeline, t.pipeline_id, "
    "CASE WHEN t.status = 'SUCCESS' AND t.pipeline_id IS NOT NULL AND t.stage_index IS NOT NULL THEN "
    "(SELECT coalesce(n.queue, '') FROM task_info n WHERE n.pipeline_id = t.pipeline_id "
    "AND n.stage_index = t.stage_index + 1 LIMIT 1) END AS next_queue",
)
FINISHED = Stream(
    "finished", "pipeline_info", "finished_at", "pipeline_id", "t.pipeline, t.overall_state, t.created_at"
)
STREAMS = (PUBLISHED, STARTED, COMPLETED, FINISHED)
STREAM_NAMES = tuple(s.name for s in STREAMS)


class RowPoller:
    """Reads each stream past its mark and observes every row in `metrics`."""

    def __init__(self, metrics: RowMetrics, marks: dict[str, Mark], batch_rows: int) -> None:
        self.metrics = metrics
        self.marks = dict(marks)
        self.batch_rows = batch_rows
        self._handlers: dict[str, Callable[[Mapping[str, Any]], None]] = {
            PUBLISHED.name: self._published,
            STARTED.name: self._started,
            COMPLETED.name: self._completed,
            FINISHED.name: self._finished,
        }

    def poll(self, conn: Connection, until: datetime) -> dict[str, int]:
        """Observes the rows up to `until`; returns how many per stream."""
        return {stream.name: self._drain(conn, stream, until) for stream in STREAMS}

    def _drain(self, conn: Connection, stream: Stream, until: datetime) -> int:
        handle, seen = self._handlers[stream.name], 0
        for _ in range(MAX_BATCHES):
            mark = self.marks[stream.name]
            if until < mark.at or (until == mark.at and mark.key is None):
                break  # nothing new has settled (or the clock went back: wait for it)
            params = {"at": mark.at, "key": mark.key, "until": until, "limit": self.batch_rows}
            rows = list(conn.execute(stream.query(mark.key is not None), params).mappings())
            for row in rows:
                handle(row)
            seen += len(rows)
            if len(rows) < self.batch_rows:  # every row up to `until` is seen
                self.marks[stream.name] = Mark(until)
                break
            self.marks[stream.name] = Mark(rows[-1]["mark_at"], rows[-1]["mark_key"])
        return seen

    # -- one row of each stream ---------------------------------------------------
    def _published(self, row: Mapping[str, Any]) -> None:
        self.metrics.published.labels(self.metrics.labels.queue(row["queue"])).inc()

    def _started(self, row: Mapping[str, Any]) -> None:
        queue = self.metrics.labels.queue(row["queue"])
        self.metrics.started.labels(queue).inc()
        if row["retry_count"] == 0:
            ready = max(row["created_at"], row["previous_done"] or row["created_at"])
            self.metrics.wait.labels(queue).observe(max(0.0, (row["started_at"] - ready).total_seconds()))

    def _completed(self, row: Mapping[str, Any]) -> None:
        labels = self.metrics.labels
        self.metrics.finished.labels(labels.queue(row["queue"]), row["status"]).inc()
        if row["pipeline_id"] is not None and row["retry_count"]:
            self.metrics.retries.labels(labels.pipeline(row["pipeline"])).inc(row["retry_count"])
        if row["next_queue"] is not None:
            self.metrics.published.labels(labels.queue(row["next_queue"] or None)).inc()

    def _finished(self, row: Mapping[str, Any]) -> None:
        seconds = max(0.0, (row["mark_at"] - row["created_at"]).total_seconds())
        pipeline = self.metrics.labels.pipeline(row["pipeline"])
        self.metrics.pipeline_duration.labels(pipeline, row["overall_state"]).observe(seconds)
