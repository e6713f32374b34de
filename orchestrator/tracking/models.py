"""The tracking tables: one row per Celery task (the monitoring design's task_info, plus
queue, worker, times, pipeline place and state bookkeeping) and one row per
submitted pipeline with its stages in order."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, DateTime, Double, Index, Integer, String, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from orchestrator.storage.db.models import Base

# none_as_null: Python None is SQL NULL (not JSON 'null'), so COALESCE merges work.
Json = JSONB(none_as_null=True)


class TaskInfo(Base):
    __tablename__ = "task_info"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(String(64), unique=True)
    task_name: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16))
    # State bookkeeping: the stored status is the one of the highest (rank, time) event (states.py).
    status_rank: Mapped[int] = mapped_column(BigInteger)
    status_at: Mapped[float] = mapped_column(Double)
    args: Mapped[Any] = mapped_column(Json, nullable=True)
    kwargs: Mapped[Any] = mapped_column(Json, nullable=True)
    result: Mapped[Any] = mapped_column(Json, nullable=True)  # summarised, for people
    output: Mapped[Any] = mapped_column(Json, nullable=True)  # whole (secrets masked): the next stage's input
    error_type: Mapped[str | None] = mapped_column(String(255), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    traceback: Mapped[str | None] = mapped_column(Text, nullable=True)
    retry_count: Mapped[int] = mapped_column(Integer, default=0)
    retry_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    redelivered: Mapped[bool] = mapped_column(Boolean, default=False)
    root_task_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    parent_task_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    chain_total: Mapped[int | None] = mapped_column(Integer, nullable=True)
    pipeline_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    pipeline: Mapped[str | None] = mapped_column(String(64), nullable=True)
    stage_index: Mapped[int | None] = mapped_column(Integer, nullable=True)
    queue: Mapped[str | None] = mapped_column(String(128), nullable=True)
    worker: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    runtime: Mapped[float | None] = mapped_column(Double, nullable=True)  # seconds of the last attempt
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        Index("ix_task_info_root_task_id", "root_task_id"),
        Index("ix_task_info_parent_task_id", "parent_task_id"),
        Index("ix_task_info_created_at", "created_at", "id"),
        Index("ix_task_info_status_created_at", "status", "created_at", "id"),
        Index("ix_task_info_task_name_created_at", "task_name", "created_at", "id"),
        Index("ix_task_info_pipeline_id", "pipeline_id", "stage_index"),
        Index("ix_task_info_pipeline_created_at", "pipeline", "created_at", "id"),
        # The metrics exporter's row streams (migration 0007): partial, only rows with the time.
        Index("ix_task_info_started_at", "started_at", "id", postgresql_where="started_at IS NOT NULL"),
        Index("ix_task_info_completed_at", "completed_at", "id", postgresql_where="completed_at IS NOT NULL"),
    )


class PipelineInfo(Base):
    __tablename__ = "pipeline_info"

    pipeline_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    pipeline: Mapped[str] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    root_task_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    stage_count: Mapped[int] = mapped_column(Integer)
    stages: Mapped[list[dict[str, Any]]] = mapped_column(Json)  # the plan: [{stage_index, task_name, task_id}]
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # What a re-send needs from PostgreSQL alone (tracking.recovery): the first stage's input, the priority.
    input: Mapped[Any] = mapped_column(Json, nullable=True)
    priority: Mapped[int | None] = mapped_column(Integer, nullable=True)
    traceparent: Mapped[str | None] = mapped_column(String(64), nullable=True)  # W3C, of its submission (tracing on)
    # Materialised by the writer after every batch (pipeline_view.py), so a status read is one row:
    stage_states: Mapped[list[dict[str, Any]]] = mapped_column(Json, server_default="[]")  # current stage entries
    overall_state: Mapped[str] = mapped_column(String(16), server_default="PENDING")
    completed_steps: Mapped[int] = mapped_column(Integer, server_default="0")
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        Index("ix_pipeline_info_created_at", "created_at"),
        Index("ix_pipeline_info_pipeline_created_at", "pipeline", "created_at"),
        Index("ix_pipeline_info_state_created_at", "overall_state", "created_at"),
        Index("ix_pipeline_info_finished_at", "finished_at", "pipeline_id", postgresql_where="finished_at IS NOT NULL"),
    )
