"""The tracking queries the gateway calls (no HTTP here): a pipeline's status,
task history with cursor pagination, recent pipelines, metrics, and the mean
stage durations behind an estimated duration. PostgreSQL is the source of
truth; Redis adds what the outbox has not drained yet and the live progress."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from sqlalchemy import Engine, text

from orchestrator.app import celery_config
from orchestrator.broker_state import UNACKED_KEY, queue_keys
from orchestrator.db.engine import engine_for
from orchestrator.pipelines import PIPELINES
from orchestrator.progress import read_pipeline_progress
from orchestrator.routing import QUEUES
from orchestrator.settings import OrchestratorSettings
from orchestrator.tracking import status_view
from orchestrator.tracking.outbox import plan_key, task_key
from orchestrator.tracking.states import SUCCESS
from orchestrator.tracking.views import (
    ChainMetrics, HistoryPage, Metrics, PipelineStatus, PipelineSummary, TaskNameMetrics, TaskRecord,
)

MAX_PAGE = 1000
STAGE_SAMPLE = 200  # recent successful runs averaged per stage
RECORD_COLUMNS = ", ".join(TaskRecord.model_fields)
_STAGE_COLUMNS = ("task_id, task_name, status, status_rank, status_at, result, error_type, error_message, "
                  "retry_count, retry_reason, stage_index, queue, worker, created_at, started_at, completed_at, runtime")
_DURATION = "COALESCE(runtime, EXTRACT(EPOCH FROM completed_at - started_at))"


class TrackingQueries:
    def __init__(self, settings: OrchestratorSettings, engine: Engine | None = None,
                 redis_client: redis.Redis | None = None, broker: redis.Redis | None = None) -> None:
        self.settings = settings
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
        with self.engine.connect() as conn:
            head = conn.execute(text("SELECT pipeline, stage_count, stages, created_at FROM pipeline_info "
                                     "WHERE pipeline_id = :id"), {"id": pipeline_id}).mappings().first()
            rows = [dict(r) for r in conn.execute(text(
                f"SELECT {_STAGE_COLUMNS}, pipeline, chain_total FROM task_info WHERE pipeline_id = :id "
                "ORDER BY stage_index, created_at"), {"id": pipeline_id}).mappings()]
        source = "postgres"
        plan, name = (head["stages"], head["pipeline"]) if head else ([], rows[0]["pipeline"] if rows else None)
        stage_count = head["stage_count"] if head else (rows[0]["chain_total"] if rows else None)
        created = head["created_at"] if head else (min(r["created_at"] for r in rows) if rows else None)
        if not head and not rows:  # submitted, not drained yet: the live plan
            live_plan = _decode(self.redis.hgetall(plan_key(pipeline_id)))
            if not live_plan.get("stages"):
                return None
            plan, name, source = json.loads(live_plan["stages"]), live_plan.get("pipeline"), "live"
            stage_count = int(live_plan.get("stage_count") or len(plan))
            created = status_view.from_epoch(live_plan.get("created"))
        stages = status_view.stages_of(plan, rows)
        with self.redis.pipeline(transaction=False) as pipe:
            for stage in stages:
                pipe.hgetall(task_key(stage["task_id"]))
            lives = [_decode(h) for h in pipe.execute()]
        stages = [status_view.overlay_live(s, live) for s, live in zip(stages, lives)]
        progress = read_pipeline_progress(self.redis, pipeline_id)
        return status_view.build(pipeline_id, name or "", stages, progress, created, source, stage_count)

    def task(self, task_id: str) -> TaskRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(text(f"SELECT {RECORD_COLUMNS} FROM task_info WHERE task_id = :id"),
                               {"id": task_id}).mappings().first()
        return TaskRecord(**row) if row else None

    # -- lists ----------------------------------------------------------------------
    def history(self, hours: float = 24, status: str | None = None, task_name: str | None = None,
                pipeline: str | None = None, limit: int = 100, cursor: str | None = None) -> HistoryPage:
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
        sql = (f"SELECT id, {RECORD_COLUMNS} FROM task_info WHERE {' AND '.join(where)} "
               "ORDER BY created_at DESC, id DESC LIMIT :limit")
        with self.engine.connect() as conn:
            rows = list(conn.execute(text(sql), params).mappings())
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = _encode_cursor(rows[-1]["created_at"], rows[-1]["id"]) if more else None
        return HistoryPage(items=[TaskRecord(**{k: v for k, v in r.items() if k != "id"}) for r in rows],
                           next_cursor=next_cursor)

    def recent_pipelines(self, limit: int = 20) -> list[PipelineSummary]:
        limit = max(1, min(limit, MAX_PAGE))
        with self.engine.connect() as conn:
            heads = list(conn.execute(text(
                "SELECT pipeline_id, pipeline, stage_count, created_at FROM pipeline_info "
                "ORDER BY created_at DESC LIMIT :limit"), {"limit": limit}).mappings())
            rows = list(conn.execute(text(
                "SELECT pipeline_id, task_id, task_name, status, stage_index, created_at, completed_at "
                "FROM task_info WHERE pipeline_id = ANY(:ids)"), {"ids": [h["pipeline_id"] for h in heads]}).mappings())
        by_pipeline: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            by_pipeline.setdefault(row["pipeline_id"], []).append(dict(row))
        out = []
        for head in heads:
            stages = status_view.stages_of([], by_pipeline.get(head["pipeline_id"], []))
            view = status_view.build(head["pipeline_id"], head["pipeline"], stages, {}, head["created_at"],
                                     "postgres", head["stage_count"])
            finished = [s.get("completed_at") for s in stages if s.get("completed_at")]
            out.append(PipelineSummary(
                pipeline_id=view.pipeline_id, pipeline=view.pipeline, overall_state=view.overall_state,
                total_steps=view.total_steps, completed_steps=view.completed_steps, created_at=head["created_at"],
                completed_at=max(finished) if view.overall_state == SUCCESS and finished else None))
        return out

    # -- numbers ----------------------------------------------------------------------
    def metrics(self, window_hours: float = 24, queues: tuple[str, ...] = QUEUES) -> Metrics:
        params = {"since": datetime.now(UTC) - timedelta(hours=window_hours)}
        with self.engine.connect() as conn:
            per_name = list(conn.execute(text(f"""
                SELECT task_name, count(*) AS total,
                       count(*) FILTER (WHERE status = 'SUCCESS') AS succeeded,
                       count(*) FILTER (WHERE status = 'FAILURE') AS failed,
                       avg({_DURATION}) FILTER (WHERE status IN ('SUCCESS', 'FAILURE')) AS mean_seconds,
                       percentile_cont(0.95) WITHIN GROUP (ORDER BY {_DURATION})
                           FILTER (WHERE status IN ('SUCCESS', 'FAILURE')) AS p95_seconds,
                       coalesce(sum(retry_count), 0) AS retries,
                       count(*) FILTER (WHERE retry_count > 0) AS retried
                FROM task_info WHERE created_at >= :since GROUP BY task_name ORDER BY task_name"""),
                params).mappings())
            errors = dict(conn.execute(text(
                "SELECT coalesce(error_type, 'unknown'), count(*) FROM task_info "
                "WHERE created_at >= :since AND status = 'FAILURE' GROUP BY 1 ORDER BY 2 DESC"), params).all())
            chains = conn.execute(text("""
                SELECT count(*) AS total,
                       count(*) FILTER (WHERE NOT broken AND succeeded >= stage_count) AS completed,
                       count(*) FILTER (WHERE broken) AS failed
                FROM (SELECT pipeline_id, max(chain_total) AS stage_count,
                             count(*) FILTER (WHERE status = 'SUCCESS') AS succeeded,
                             bool_or(status IN ('FAILURE', 'REVOKED')) AS broken
                      FROM task_info WHERE created_at >= :since AND pipeline_id IS NOT NULL
                      GROUP BY pipeline_id) per_pipeline"""), params).mappings().one()
        by_task = [TaskNameMetrics(
            task_name=r["task_name"], total=r["total"], succeeded=r["succeeded"], failed=r["failed"],
            success_rate=_ratio(r["succeeded"], r["succeeded"] + r["failed"]),
            mean_seconds=_float(r["mean_seconds"]), p95_seconds=_float(r["p95_seconds"]), retries=int(r["retries"]),
        ) for r in per_name]
        succeeded, failed = sum(t.succeeded for t in by_task), sum(t.failed for t in by_task)
        completed, broken = chains["completed"], chains["failed"]
        depth, unacked = self.queue_depth(queues)
        return Metrics(
            window_hours=window_hours, total_tasks=sum(t.total for t in by_task),
            success_rate=_ratio(succeeded, succeeded + failed), retries=sum(t.retries for t in by_task),
            tasks_retried=sum(int(r["retried"]) for r in per_name), by_task=by_task,
            chains=ChainMetrics(total=chains["total"], completed=completed, failed=broken,
                                running=chains["total"] - completed - broken,
                                completion_rate=_ratio(completed, completed + broken)),
            errors_by_type=errors, queue_depth=depth, unacked=unacked,
        )

    def queue_depth(self, queues: tuple[str, ...] = QUEUES) -> tuple[dict[str, int], int]:
        """Messages waiting per queue, and delivered but unacknowledged."""
        keys = queue_keys(celery_config(self.settings)["broker_transport_options"], queues)
        with self.broker.pipeline(transaction=False) as pipe:
            for queue in queues:
                for key in keys[queue]:
                    pipe.llen(key)
            pipe.hlen(UNACKED_KEY)
            sizes = pipe.execute()
        per_queue, at = {}, 0
        for queue in queues:
            per_queue[queue] = sum(sizes[at:at + len(keys[queue])])
            at += len(keys[queue])
        return per_queue, int(sizes[-1])

    def mean_stage_seconds(self, pipeline_name: str) -> dict[str, float | None]:
        """Mean duration of each stage over its recent successful runs (None: no history)."""
        stages = PIPELINES[pipeline_name].stages
        out: dict[str, float | None] = {}
        with self.engine.connect() as conn:
            for name in stages:
                value = conn.execute(text(
                    f"SELECT avg(d) FROM (SELECT {_DURATION} AS d FROM task_info WHERE task_name = :name "
                    "AND status = 'SUCCESS' ORDER BY created_at DESC LIMIT :n) recent"),
                    {"name": name, "n": STAGE_SAMPLE}).scalar()
                out[name] = _float(value)
        return out

    def estimated_seconds(self, pipeline_name: str, default: float | None = None) -> float:
        """Sum of the stages' means; until each stage has history, `default` when given,
        else the pipeline's declared default."""
        means = self.mean_stage_seconds(pipeline_name)
        if any(v is None for v in means.values()):
            return float(default or PIPELINES[pipeline_name].default_seconds)
        return round(sum(v for v in means.values() if v is not None), 3)


def _decode(raw: dict[Any, Any]) -> dict[str, str]:
    return {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in raw.items()}


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
