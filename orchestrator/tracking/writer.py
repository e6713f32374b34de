"""Writing a batch of tracking events to PostgreSQL in one transaction: task
rows upserted with merge.py's rules expressed in ON CONFLICT DO UPDATE, and
pipeline rows inserted once. Replaying a batch changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, and_, case, func, literal_column, or_, tuple_
from sqlalchemy.dialects.postgresql import insert

from orchestrator.tracking.merge import OUTCOME, PREFERRED, STATIC, fold
from orchestrator.tracking.models import PipelineInfo, TaskInfo


def _task_upsert():
    stmt = insert(TaskInfo)
    t, ex = TaskInfo.__table__.c, stmt.excluded
    new_wins = tuple_(ex.status_rank, ex.status_at) >= tuple_(t.status_rank, t.status_at)
    values: dict[str, Any] = {}
    for column in OUTCOME:
        values[column] = case((new_wins, ex[column]), else_=t[column])
    for column in STATIC:
        values[column] = func.coalesce(t[column], ex[column])
    for column in PREFERRED:
        values[column] = case((new_wins, func.coalesce(ex[column], t[column])),
                              else_=func.coalesce(t[column], ex[column]))
    values["created_at"] = func.least(t.created_at, ex.created_at)
    values["started_at"] = func.greatest(t.started_at, ex.started_at)
    values["retry_count"] = func.greatest(t.retry_count, ex.retry_count)
    values["retry_reason"] = case(
        (and_(ex.retry_reason.is_not(None), ex.retry_count >= t.retry_count), ex.retry_reason),
        (and_(t.retry_reason.is_not(None), t.retry_count >= ex.retry_count), t.retry_reason),
        else_=literal_column("NULL"),
    )
    values["redelivered"] = or_(t.redelivered, ex.redelivered)
    values["updated_at"] = func.now()
    return stmt.on_conflict_do_update(index_elements=[t.task_id], set_=values)


def _pipeline_insert():
    return insert(PipelineInfo).on_conflict_do_nothing(index_elements=[PipelineInfo.__table__.c.pipeline_id])


TASK_UPSERT = _task_upsert()
PIPELINE_INSERT = _pipeline_insert()


def pipeline_row(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "pipeline_id": record["pipeline_id"], "pipeline": record["pipeline"], "request_id": record.get("request_id"),
        "root_task_id": record.get("root_task_id"), "stage_count": int(record["stage_count"]),
        "stages": record["stages"], "created_at": datetime.fromtimestamp(float(record["at"]), UTC),
    }


def storable(value: Any) -> Any:
    """`value` with every NUL character replaced by U+FFFD: PostgreSQL text and
    jsonb cannot hold NUL, and one such character would fail the whole batch."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if isinstance(value, dict):
        return {storable(k): storable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [storable(v) for v in value]
    return value


def split(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(task rows, pipeline rows) of a batch, one row per key, in key order (a
    fixed lock order, so concurrent drainers cannot deadlock)."""
    tasks = fold([r for r in records if r.get("kind") == "task"])
    pipelines = {r["pipeline_id"]: pipeline_row(r) for r in records if r.get("kind") == "pipeline"}
    return ([storable(tasks[k]) for k in sorted(tasks)], [storable(pipelines[k]) for k in sorted(pipelines)])


def write_records(conn: Connection, records: list[dict[str, Any]]) -> int:
    """Upserts a batch inside the caller's transaction; returns the rows written."""
    task_rows, pipeline_rows = split(records)
    if pipeline_rows:
        conn.execute(PIPELINE_INSERT, pipeline_rows)
    if task_rows:
        conn.execute(TASK_UPSERT, task_rows)
    return len(task_rows) + len(pipeline_rows)
