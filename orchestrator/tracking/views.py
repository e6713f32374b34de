"""What the tracking queries return (pydantic models the gateway serialises)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel


class StageView(BaseModel):
    """One task of a pipeline, in stage order."""

    task_id: str
    task_name: str
    status: str  # PENDING STARTED PROGRESS RETRY SUCCESS FAILURE REVOKED SKIPPED
    step: int  # 1-based
    stage_index: int | None
    ready: bool
    result: str | None = None  # a short summary: the result, the progress, or the error
    error_type: str | None = None
    retries: int = 0
    worker: str | None = None
    queue: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    runtime: float | None = None


class PipelineStatus(BaseModel):
    pipeline_id: str
    pipeline: str
    overall_state: str
    total_steps: int
    completed_steps: int
    progress: float  # 0–100
    message: str | None = None
    partial_output: str | None = None  # what a running stage wrote so far (an answer being generated)
    trace_id: str | None = None  # the pipeline's OpenTelemetry trace (tracing on)
    created_at: datetime | None = None
    tasks: list[StageView]
    source: str  # "postgres" | "live" (not yet drained into PostgreSQL)


class PipelineSummary(BaseModel):
    pipeline_id: str
    pipeline: str
    overall_state: str
    total_steps: int
    completed_steps: int
    created_at: datetime
    completed_at: datetime | None = None


class TaskRecord(BaseModel):
    """A task_info row (args/kwargs/result already masked and summarised)."""

    task_id: str
    task_name: str
    status: str
    args: Any = None
    kwargs: Any = None
    result: Any = None
    error_type: str | None = None
    error_message: str | None = None
    traceback: str | None = None
    retry_count: int = 0
    retry_reason: str | None = None
    redelivered: bool = False
    root_task_id: str | None = None
    parent_task_id: str | None = None
    chain_total: int | None = None
    pipeline_id: str | None = None
    pipeline: str | None = None
    stage_index: int | None = None
    queue: str | None = None
    worker: str | None = None
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    runtime: float | None = None


class HistoryPage(BaseModel):
    items: list[TaskRecord]
    next_cursor: str | None = None  # pass back as `cursor` for the next (older) page


class TaskNameMetrics(BaseModel):
    task_name: str
    total: int
    succeeded: int
    failed: int
    success_rate: float | None  # succeeded / (succeeded + failed)
    mean_seconds: float | None  # over finished tasks
    p95_seconds: float | None
    retries: int


class ChainMetrics(BaseModel):
    total: int
    completed: int
    failed: int
    running: int
    completion_rate: float | None  # completed / (completed + failed)


class PipelineMetrics(BaseModel):
    pipeline: str
    total: int
    completed: int
    failed: int
    success_rate: float | None  # completed / (completed + failed)
    mean_seconds: float | None  # submission to the last stage's end, over completed runs
    p95_seconds: float | None


class Metrics(BaseModel):
    window_hours: float
    total_tasks: int
    success_rate: float | None
    retries: int
    tasks_retried: int
    by_task: list[TaskNameMetrics]
    chains: ChainMetrics
    by_pipeline: list[PipelineMetrics]
    errors_by_type: dict[str, int]
    queue_depth: dict[str, int]  # waiting messages per queue (all priority levels)
    queue_oldest_seconds: dict[str, float]  # age of each queue's oldest waiting message (0: empty)
    unacked: int  # messages delivered to workers and not yet acknowledged
