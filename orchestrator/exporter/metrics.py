"""The exporter's counters and histograms (from PostgreSQL rows) in a registry
of its own, and the label values they may take. Labels stay low-cardinality:
a queue or pipeline the registry does not know is `other`; never a task id,
a pipeline id or a host."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from orchestrator.tracking.states import PIPELINE_STATES, PIPELINE_TERMINAL

OTHER = "other"
PIPELINE_END_STATES = tuple(s for s in PIPELINE_STATES if s in PIPELINE_TERMINAL)  # label values, in a stable order
# Queue waits: milliseconds on an idle system to an hour behind a backlog.
WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
# Whole pipelines: a second (a preload) to two hours (a long transcription behind a queue).
DURATION_BUCKETS = (0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200)


class Labels:
    """Maps stored values to label values: the known ones, else `other`."""

    def __init__(self, queues: Iterable[str], pipelines: Iterable[str]) -> None:
        self.queues = tuple(queues)
        self.pipelines = tuple(pipelines)

    def queue(self, value: str | None) -> str:
        return value if value in self.queues else OTHER

    def pipeline(self, value: str | None) -> str:
        return value if value in self.pipelines else OTHER


class RowMetrics:
    """What the poller observes, each tracking row once."""

    def __init__(self, labels: Labels, registry: CollectorRegistry) -> None:
        self.labels = labels
        self.published = Counter(
            "aiworker_tasks_published",
            "tasks put on a queue: a producer's (submit, retry) when recorded, a pipeline's later stage when "
            "the stage before it succeeded",
            ("queue",),
            registry=registry,
        )
        self.started = Counter(
            "aiworker_tasks_started",
            "task starts (a retried task once per attempt seen)",
            ("queue",),
            registry=registry,
        )
        self.finished = Counter(
            "aiworker_tasks_finished", "tasks that reached a final state", ("queue", "state"), registry=registry
        )
        self.wait = Histogram(
            "aiworker_task_queue_wait_seconds",
            "first attempt's start minus when its message was published (a later stage: its previous stage's end)",
            ("queue",),
            buckets=WAIT_BUCKETS,
            registry=registry,
        )
        self.pipeline_duration = Histogram(
            "aiworker_pipeline_duration_seconds",
            "submit to end of each pipeline, by its final state",
            ("pipeline", "state"),
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.retries = Counter(
            "aiworker_stage_retries",
            "retries of pipeline stages, counted when the stage ends",
            ("pipeline",),
            registry=registry,
        )
        self.stuck = Gauge(
            "aiworker_pipelines_stuck",
            "pipelines not finished after their estimated duration times AIWORKER_EXPORTER_STUCK_FACTOR",
            ("pipeline",),
            registry=registry,
        )
        # Every known series exists from the start at 0, so rates and ratios are defined.
        for queue in labels.queues:
            self.published.labels(queue)
            self.started.labels(queue)
            self.wait.labels(queue)
            for state in PIPELINE_END_STATES:
                self.finished.labels(queue, state)
        for pipeline in labels.pipelines:
            self.retries.labels(pipeline)
            self.stuck.labels(pipeline).set(0)
            for state in PIPELINE_END_STATES:
                self.pipeline_duration.labels(pipeline, state)
