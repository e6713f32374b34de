"""`aiworker-exporter`: queue, pipeline and tracking metrics for Prometheus on
one port (AIWORKER_EXPORTER_PORT, 9160). Run ONE replica: its counters count
each tracking row once, and a second replica would count them again (its
marks are shared in Redis, too).

    at each scrape (Redis, now)   queue lengths, oldest message's age, unacknowledged deliveries,
                                  the tracking outbox and its dead letters (exporter_broker.py)
    every poll_seconds            new tracking rows from PostgreSQL, each observed once: tasks
                                  published / started / finished, queue waits, pipeline durations,
                                  stage retries (exporter_rows.py); pipelines stuck (exporter_stuck.py)

Rows are counted up to `until`: settle_seconds ago, and never past the oldest
event still in the outbox (a row lands in PostgreSQL only when its outbox entry
is drained: while PostgreSQL is away the counts wait, then catch up)."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
import structlog
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from orchestrator.app import celery_config
from orchestrator.broker.routing import QUEUES
from orchestrator.exporter.marks import MarkStore
from orchestrator.exporter.metrics import Labels, RowMetrics
from orchestrator.exporter.queues import read_outbox, read_queues
from orchestrator.exporter.rows import STREAM_NAMES, RowPoller
from orchestrator.exporter.settings import ExporterSettings
from orchestrator.exporter.stuck import StuckPipelines
from orchestrator.pipelines.registry import PIPELINES, load_pipeline_modules
from orchestrator.settings import OrchestratorSettings
from orchestrator.storage.db.engine import engine_for
from orchestrator.tracking.reading.queries import PipelineFacts, TrackingQueries
from svc_runtime.metrics import MetricsEndpoint

log = structlog.get_logger(__name__)
SOURCES = ("broker", "redis", "postgres")


@dataclass
class Health:
    ok: dict[str, bool] = field(default_factory=lambda: dict.fromkeys(SOURCES, False))
    last_poll: float = 0.0  # epoch seconds when the last complete poll of PostgreSQL began
    lag: float = 0.0  # seconds from then back to the time it counted rows up to


class Exporter:
    def __init__(
        self,
        settings: ExporterSettings,
        orchestrator: OrchestratorSettings,
        pipelines: Mapping[str, PipelineFacts] = PIPELINES,
        queues: tuple[str, ...] = QUEUES,
    ) -> None:
        self.settings = settings
        self.outbox = orchestrator.tracking_outbox
        self.queues = queues
        self.transport_options = celery_config(orchestrator)["broker_transport_options"]
        self.broker = redis.Redis.from_url(orchestrator.broker_url, socket_timeout=5, socket_connect_timeout=5)
        self.redis = redis.Redis.from_url(orchestrator.redis_url, socket_timeout=5, socket_connect_timeout=5)
        self.engine = engine_for(orchestrator.tracking_database_url)
        self.registry = CollectorRegistry()
        self.endpoint = MetricsEndpoint(self.registry)
        self.labels = Labels(queues, pipelines)
        self.metrics = RowMetrics(self.labels, self.registry)
        queries = TrackingQueries(
            orchestrator,
            pipelines,
            queues,
            self.transport_options,
            engine=self.engine,
            redis_client=self.redis,
            broker=self.broker,
        )
        self.stuck = StuckPipelines(queries, self.metrics, settings.stuck_factor, settings.estimate_refresh_seconds)
        self.mark_store = MarkStore(self.redis)
        self.poller: RowPoller | None = None  # once the saved marks are read
        self.health = Health()
        self.registry.register(ScrapeCollector(self))
        self.stopping = threading.Event()

    # -- PostgreSQL, every poll_seconds ------------------------------------------------
    def poll_once(self) -> dict[str, int] | None:
        """Counts the rows settled since the last poll; None when Redis or PostgreSQL failed."""
        now = datetime.now(UTC)
        settle = timedelta(seconds=self.settings.settle_seconds)
        try:
            outbox = read_outbox(self.redis, self.outbox)
            if self.poller is None:
                oldest = now - timedelta(seconds=self.settings.catch_up_seconds)
                marks = self.mark_store.load(STREAM_NAMES, start=now - settle, oldest=oldest)
                self.poller = RowPoller(self.metrics, marks, self.settings.batch_rows)
                log.info("exporter_marks", **{name: mark.at.isoformat() for name, mark in marks.items()})
        except redis.RedisError as exc:
            self.health.ok["redis"] = False
            log.warning("exporter_poll_failed", source="redis", error=str(exc))
            return None
        self.health.ok["redis"] = True
        until = now - settle
        if outbox.oldest is not None:  # its events (and all later) may not be in PostgreSQL yet
            until = min(until, datetime.fromtimestamp(outbox.oldest, UTC) - settle)
        try:
            with self.engine.connect() as conn:
                counts = self.poller.poll(conn, until)
                self.stuck.poll(conn, now)
        except Exception as exc:  # noqa: BLE001 - any database error: reported as down, retried next poll
            self.health.ok["postgres"] = False
            log.warning("exporter_poll_failed", source="postgres", error=str(exc))
            return None
        self.health.ok["postgres"] = True
        self.health.last_poll, self.health.lag = now.timestamp(), (now - until).total_seconds()
        try:
            self.mark_store.save(self.poller.marks)
        except redis.RedisError as exc:  # kept in memory; saved by the next poll
            log.warning("exporter_marks_not_saved", error=str(exc))
        if any(counts.values()):
            log.debug("exporter_polled", **counts)
        return counts

    def run(self) -> None:
        while not self.stopping.is_set():
            self.poll_once()
            self.stopping.wait(self.settings.poll_seconds)

    def serve(self) -> int:
        """Starts /metrics; returns the bound port."""
        return self.endpoint.serve(self.settings.host, self.settings.port)

    def close(self) -> None:
        self.endpoint.close()
        self.broker.close()
        self.redis.close()


class ScrapeCollector(Collector):
    """The gauges read at each scrape: Redis now, and the exporter's health."""

    def __init__(self, exporter: Exporter) -> None:
        self.exporter = exporter

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(_families())  # no Redis call when the registry is built

    def collect(self) -> Iterator[GaugeMetricFamily]:
        ex, now = self.exporter, time.time()
        families = {f.name: f for f in _families()}
        try:
            queues = read_queues(ex.broker, ex.transport_options, ex.queues, ex.labels)
            ex.health.ok["broker"] = True
        except redis.RedisError as exc:
            ex.health.ok["broker"] = False
            log.warning("exporter_scrape_failed", source="broker", error=str(exc))
        else:
            for queue in ex.queues:
                families["aiworker_queue_length"].add_metric([queue], queues.length[queue])
                published = queues.oldest_published[queue]
                age = 0.0 if published is None else max(0.0, now - published)
                families["aiworker_queue_oldest_age_seconds"].add_metric([queue], age)
            for queue, count in queues.unacked.items():
                families["aiworker_queue_unacked"].add_metric([queue], count)
        try:
            outbox = read_outbox(ex.redis, ex.outbox)
            ex.health.ok["redis"] = True
        except redis.RedisError as exc:
            ex.health.ok["redis"] = False
            log.warning("exporter_scrape_failed", source="redis", error=str(exc))
        else:
            families["aiworker_tracking_outbox_entries"].add_metric([], outbox.entries)
            oldest_age = 0.0 if outbox.oldest is None else max(0.0, now - outbox.oldest)
            families["aiworker_tracking_outbox_oldest_age_seconds"].add_metric([], oldest_age)
            families["aiworker_tracking_dead_letters"].add_metric([], outbox.dead_letters)
        for source in SOURCES:
            families["aiworker_exporter_up"].add_metric([source], 1 if ex.health.ok[source] else 0)
        families["aiworker_exporter_last_poll_timestamp_seconds"].add_metric([], ex.health.last_poll)
        families["aiworker_exporter_lag_seconds"].add_metric([], ex.health.lag)
        return iter(families.values())


def _families() -> list[GaugeMetricFamily]:
    def gauge(name: str, doc: str, labels: Sequence[str] = ()) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, doc, labels=list(labels))

    return [
        gauge("aiworker_queue_length", "messages waiting in the queue (every priority list)", ["queue"]),
        gauge(
            "aiworker_queue_oldest_age_seconds",
            "now minus the published_at of the oldest waiting message (0: empty)",
            ["queue"],
        ),
        gauge("aiworker_queue_unacked", "messages delivered to a worker and not acknowledged yet", ["queue"]),
        gauge("aiworker_tracking_outbox_entries", "tracking events waiting in the outbox stream for PostgreSQL"),
        gauge("aiworker_tracking_outbox_oldest_age_seconds", "age of the oldest event in the outbox stream (0: empty)"),
        gauge("aiworker_tracking_dead_letters", "tracking events PostgreSQL refused, in <outbox>:dead"),
        gauge("aiworker_exporter_up", "1 when the exporter's last read of the source worked", ["source"]),
        gauge("aiworker_exporter_last_poll_timestamp_seconds", "when the exporter last read PostgreSQL completely"),
        gauge(
            "aiworker_exporter_lag_seconds",
            "how far behind its last poll the rows are counted (settle time, or the outbox's oldest event)",
        ),
    ]


def main(argv: Sequence[str] | None = None) -> None:
    from svc_runtime.cli import settings_from_cli
    from svc_runtime.logs import configure_logging

    settings = settings_from_cli(ExporterSettings, argv, prog="aiworker-exporter")
    configure_logging(settings.log_level, settings.log_format)
    orchestrator = OrchestratorSettings()
    load_pipeline_modules(orchestrator.pipeline_modules)
    exporter = Exporter(settings, orchestrator)

    def stop(signum: int, _frame: Any) -> None:
        log.info("exporter_stopping", signal=signum)
        exporter.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    port = exporter.serve()
    log.info("exporter_serving", host=settings.host, port=port, queues=list(exporter.queues))
    try:
        exporter.run()
    finally:
        exporter.close()


if __name__ == "__main__":
    main()
