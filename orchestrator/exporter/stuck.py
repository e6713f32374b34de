"""Pipelines stuck: not finished (PENDING or PROGRESS) longer than their
estimated duration (TrackingQueries.estimated_seconds: the stages' recent
means, or the pipeline's stated default) times a factor. One query over the
unfinished pipelines (ix_pipeline_info_state_created_at); the estimates are
reused for `refresh_seconds`."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from sqlalchemy import Connection, text

from orchestrator.exporter.metrics import RowMetrics
from orchestrator.tracking.reading.queries import TrackingQueries
from orchestrator.tracking.states import PENDING, PROGRESS

_STUCK = text(
    "SELECT t.pipeline, count(*) AS stuck FROM pipeline_info t "
    "JOIN unnest(CAST(:names AS text[]), CAST(:cuts AS timestamptz[])) AS c(name, cut) ON t.pipeline = c.name "
    "WHERE t.overall_state = ANY(CAST(:running AS text[])) AND t.finished_at IS NULL AND t.created_at < c.cut "
    "GROUP BY t.pipeline"
)


class StuckPipelines:
    def __init__(self, queries: TrackingQueries, metrics: RowMetrics, factor: float, refresh_seconds: float) -> None:
        self.queries = queries
        self.metrics = metrics
        self.factor = factor
        self.refresh_seconds = refresh_seconds
        self._estimates: dict[str, float] = {}
        self._estimated_at = float("-inf")

    def estimates(self) -> dict[str, float]:
        """Each known pipeline's estimated duration in seconds (cached)."""
        if time.monotonic() - self._estimated_at >= self.refresh_seconds:
            self._estimates = {name: self.queries.estimated_seconds(name) for name in self.metrics.labels.pipelines}
            self._estimated_at = time.monotonic()
        return self._estimates

    def poll(self, conn: Connection, now: datetime) -> dict[str, int]:
        estimates = self.estimates()
        names = list(estimates)
        cuts = [now - timedelta(seconds=estimates[name] * self.factor) for name in names]
        found = dict(
            conn.execute(_STUCK, {"names": names, "cuts": cuts, "running": [PENDING, PROGRESS]}).tuples().all()
        )
        counts = {name: int(found.get(name, 0)) for name in names}
        for name, count in counts.items():
            self.metrics.stuck.labels(name).set(count)
        return counts
