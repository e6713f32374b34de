"""The tracking queries the gateway calls (no HTTP here): a pipeline's status,
task history with cursor pagination, recent pipelines, metrics, and the mean
stage durations behind an estimated duration.

A pipeline's status is read in one place (`pipeline_status`): its
pipeline_info row, where the writer keeps the current state of every stage
(PostgreSQL, the truth), overlaid with its live hash in Redis (what the outbox
has not drained yet, and the running stage's progress): one row and one hash.

The queries know the pipelines and queues they are given (the gateway passes
the registry's), not the Celery app."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import redis
from sqlalchemy import Engine, text

from orchestrator import keys
from orchestrator.broker.queue_state import queue_depth, queue_oldest_seconds
from orchestrator.settings import OrchestratorSettings
from orchestrator.storage.db.engine import engine_for
from orchestrator.tracking import pipeline_view
from orchestrator.tracking.reading.inputs import NOT_KEPT, StageInput, stage_input
from orchestrator.tracking.views import (
    ChainMetrics,
    HistoryPage,
    Metrics,
    PipelineMetrics,
    PipelineStatus,
    PipelineSummary,
    TaskNameMetrics,
    TaskRecord,
)

MAX_PAGE = 1000
STAGE_SAMPLE = 200  # recent successful runs averaged per stage
RECORD_COLUMNS = ", ".join(TaskRecord.model_fields)
_DURATION = "COALESCE(runtime, EXTRACT(EPOCH FROM completed_at - started_at))"
_HEAD = text(
    "SELECT pipeline, stage_count, stages, stage_states, created_at, traceparent FROM pipeline_info "
    "WHERE pipeline_id = :id"
)


class PipelineFacts(Protocol):
    """What the queries need of a pipeline (orchestrator.pipelines.registry.PipelineSpec has it)."""

    stage_names: tuple[str, ...]
    default_seconds: float


class TrackingQueries:
    def __init__(
        self,
        settings: OrchestratorSettings,
        pipelines: Mapping[str, PipelineFacts],
        queues: tuple[str, ...],
        transport_options: dict[str, Any],
        engine: Engine | None = None,
        redis_client: redis.Redis | None = None,
        broker: redis.Redis | None = None,
    ) -> None:
        self.settings = settings
        self.pipelines = pipelines
        self.queues = queues
        self.transport_options = transport_options
        self.engine = engine or engine_for(settings.tracking_database_url)
        self.redis = redis_client or redis.Redis.from_url(settings.redis_url, socket_timeout=5)
        self._broker = broker

    @property
    def broker(self) -> redis.Redis:
        if self._broker is None:
            self._broker = redis.Redis.from_url(self.settings.broker_url, socket_timeout=5)
        return self._broker

    # -- one pipeline -------------------------------------------------------------
    def pipeline_status(self, pipeline_id: str) -> PipelineStatus | None:
        """THE status read: None when neither PostgreSQL nor Redis knows the pipeline."""
        with self.engine.connect() as conn:
            head = conn.execute(_HEAD, {"id": pipeline_id}).mappings().first()
        live = _decode(self.redis.hgetall(keys.pipeline_live(pipeline_id)))
        return pipeline_view.status_from(pipeline_id, dict(head) if head else None, live)

    def stage_input(self, pipeline_id: str, stage_index: int) -> StageInput | None:
        """What stage `stage_index` of the pipeline got (tracking.inputs)."""
        return stage_input(self.engine, pipeline_id, stage_index)

    def output(self, task_id: str) -> Any:
        """A successful task's whole output as tracked (None: not kept)."""
        with self.engine.connect() as conn:
            value = conn.execute(
                text("SELECT output FROM task_info WHERE task_id = :id AND status = 'SUCCESS'"), {"id": task_id}
            ).scalar()
        return None if isinstance(value, dict) and set(value) == {NOT_KEPT} else value

    def pipeline_tasks(self, pipeline_id: str) -> list[TaskRecord]:
        """Every task row of a pipeline (a retried stage has several), in stage order, oldest first."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    f"SELECT {RECORD_COLUMNS} FROM task_info WHERE pipeline_id = :id "
                    "ORDER BY stage_index NULLS LAST, created_at"
                ),
                {"id": pipeline_id},
            ).mappings()
            return [TaskRecord(**row) for row in rows]

    def task(self, task_id: str) -> TaskRecord | None:
        with self.engine.connect() as conn:
            row = (
                conn.execute(text(f"SELECT {RECORD_COLUMNS} FROM task_info WHERE task_id = :id"), {"id": task_id})
                .mappings()
                .first()
            )
        return TaskRecord(**row) if row else None

    # -- lists ----------------------------------------------------------------------
    def history(
        self,
        hours: float = 24,
        status: str | None = None,
        task_name: str | None = None,
        pipeline: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> HistoryPage:
        """Tasks created in the last `hours`, newest first; `next_cursor` continues
        with older ones (keyset pagination: stable while new tasks arrive)."""
        limit = max(1, min(limit, MAX_PAGE))
        where = ["created_at >= :since"]
        params: dict[str, Any] = {"since": datetime.now(UTC) - timedelta(hours=hours), "limit": limit + 1}
        for column, value in (("status", status), ("task_name", task_name), ("pipeline", pipeline)):
            if value:
                where.append(f"{column} = :{column}")
                params[column] = value
        if cursor:
            params["c_at"], params["c_id"] = _decode_cursor(cursor)
            where.append("(created_at, id) < (:c_at, :c_id)")
        sql = (
            f"SELECT id, {RECORD_COLUMNS} FROM task_info WHERE {' AND '.join(where)} "
            "ORDER BY created_at DESC, id DESC LIMIT :limit"
        )
        with self.engine.connect() as conn:
            rows = list(conn.execute(text(sql), params).mappings())
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = _encode_cursor(rows[-1]["created_at"], rows[-1]["id"]) if more else None
        return HistoryPage(
            items=[TaskRecord(**{k: v for k, v in r.items() if k != "id"}) for r in rows], next_cursor=next_cursor
        )

    def recent_pipelines(self, limit: int = 20) -> list[PipelineSummary]:
        limit = max(1, min(limit, MAX_PAGE))
        with self.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT pipeline_id, pipeline, overall_state, stage_count AS total_steps, completed_steps, "
                    "created_at, finished_at AS completed_at FROM pipeline_info ORDER BY created_at DESC LIMIT :limit"
                ),
                {"limit": limit},
            ).mappings()
            return [PipelineSummary(**row) for row in rows]

    # -- numbers ----------------------------------------------------------------------
    def metrics(self, window_hours: float = 24) -> Metrics:
        params = {"since": datetime.now(UTC) - timedelta(hours=window_hours)}
        with self.engine.connect() as conn:
            per_name = list(
                conn.execute(
                    text(f"""
                SELECT task_name, count(*) AS total,
                       count(*) FILTER (WHERE status = 'SUCCESS') AS succeeded,
                       count(*) FILTER (WHERE status = 'FAILURE') AS failed,
                       avg({_DURATION}) FILTER (WHERE status IN ('SUCCESS', 'FAILURE')) AS mean_seconds,
                       percentile_cont(0.95) WITHIN GROUP (ORDER BY {_DURATION})
                           FILTER (WHERE status IN ('SUCCESS', 'FAILURE')) AS p95_seconds,
                       coalesce(sum(retry_count), 0) AS retries,
                       count(*) FILTER (WHERE retry_count > 0) AS retried
                FROM task_info WHERE created_at >= :since GROUP BY task_name ORDER BY task_name"""),
                    params,
                ).mappings()
            )
            errors = dict(
                conn.execute(
                    text(
                        "SELECT coalesce(error_type, 'unknown'), count(*) FROM task_info "
                        "WHERE created_at >= :since AND status = 'FAILURE' GROUP BY 1 ORDER BY 2 DESC"
                    ),
                    params,
                ).all()
            )
            chains = (
                conn.execute(
                    text(
                        "SELECT count(*) AS total, count(*) FILTER (WHERE overall_state = 'SUCCESS') AS completed, "
                        "count(*) FILTER (WHERE overall_state IN ('FAILURE', 'REVOKED')) AS failed "
                        "FROM pipeline_info WHERE created_at >= :since"
                    ),
                    params,
                )
                .mappings()
                .one()
            )
            per_pipeline = list(
                conn.execute(
                    text("""
                SELECT pipeline, count(*) AS total,
                       count(*) FILTER (WHERE overall_state = 'SUCCESS') AS completed,
                       count(*) FILTER (WHERE overall_state IN ('FAILURE', 'REVOKED')) AS failed,
                       avg(extract(epoch FROM finished_at - created_at))
                           FILTER (WHERE overall_state = 'SUCCESS') AS mean_seconds,
                       percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM finished_at - created_at))
                           FILTER (WHERE overall_state = 'SUCCESS') AS p95_seconds
                FROM pipeline_info WHERE created_at >= :since GROUP BY pipeline ORDER BY pipeline"""),
                    params,
                ).mappings()
            )
        by_task = [
            TaskNameMetrics(
                task_name=r["task_name"],
                total=r["total"],
                succeeded=r["succeeded"],
                failed=r["failed"],
                success_rate=_ratio(r["succeeded"], r["succeeded"] + r["failed"]),
                mean_seconds=_float(r["mean_seconds"]),
                p95_seconds=_float(r["p95_seconds"]),
                retries=int(r["retries"]),
            )
            for r in per_name
        ]
        succeeded, failed = sum(t.succeeded for t in by_task), sum(t.failed for t in by_task)
        completed, broken = chains["completed"], chains["failed"]
        depth, unacked = self.queue_depth()
        return Metrics(
            window_hours=window_hours,
            total_tasks=sum(t.total for t in by_task),
            success_rate=_ratio(succeeded, succeeded + failed),
            retries=sum(t.retries for t in by_task),
            tasks_retried=sum(int(r["retried"]) for r in per_name),
            by_task=by_task,
            chains=ChainMetrics(
                total=chains["total"],
                completed=completed,
                failed=broken,
                running=chains["total"] - completed - broken,
                completion_rate=_ratio(completed, completed + broken),
            ),
            by_pipeline=[
                PipelineMetrics(
                    pipeline=r["pipeline"],
                    total=r["total"],
                    completed=r["completed"],
                    failed=r["failed"],
                    success_rate=_ratio(r["completed"], r["completed"] + r["failed"]),
                    mean_seconds=_float(r["mean_seconds"]),
                    p95_seconds=_float(r["p95_seconds"]),
                )
                for r in per_pipeline
            ],
            errors_by_type=errors,
            queue_depth=depth,
            queue_oldest_seconds=queue_oldest_seconds(self.broker, self.transport_options, self.queues),
            unacked=unacked,
        )

    def queue_depth(self) -> tuple[dict[str, int], int]:
        """Messages waiting per queue, and delivered but unacknowledged."""
        return queue_depth(self.broker, self.transport_options, self.queues)

    def mean_stage_seconds(self, pipeline_name: str) -> dict[str, float | None]:
        """Mean duration of each stage over its recent successful runs (None: no history)."""
        stages = self.pipelines[pipeline_name].stage_names
        out: dict[str, float | None] = {}
        with self.engine.connect() as conn:
            for name in stages:
                value = conn.execute(
                    text(
                        f"SELECT avg(d) FROM (SELECT {_DURATION} AS d FROM task_info WHERE task_name = :name "
                        "AND status = 'SUCCESS' ORDER BY created_at DESC LIMIT :n) recent"
                    ),
                    {"name": name, "n": STAGE_SAMPLE},
                ).scalar()
                out[name] = _float(value)
        return out

    def estimated_seconds(self, pipeline_name: str, default: float | None = None) -> float:
        """Sum of the stages' means; until each stage has history, `default` when given,
        else the pipeline's declared default."""
        means = self.mean_stage_seconds(pipeline_name)
        if any(v is None for v in means.values()):
            return float(default or self.pipelines[pipeline_name].default_seconds)
        return round(sum(v for v in means.values() if v is not None), 3)


def _decode(raw: dict[Any, Any]) -> dict[str, str]:
    return {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v) for k, v in raw.items()
    }


def _encode_cursor(created_at: datetime, row_id: int) -> str:
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{row_id}".encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        at, row_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        return datetime.fromisoformat(at), int(row_id)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"invalid history cursor {cursor!r}") from exc


def _ratio(part: int, whole: int) -> float | None:
    return None if not whole else round(part / whole, 4)


def _float(value: Any) -> float | None:
    return None if value is None else round(float(value), 4)
