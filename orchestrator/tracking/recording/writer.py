"""Writing a batch of tracking events to PostgreSQL in one transaction: task
rows upserted with merge.py's rules expressed in ON CONFLICT DO UPDATE,
pipeline rows inserted once, and then the state of every pipeline the batch
touched materialised into its pipeline_info row (pipeline_view.py), so that
reading a pipeline's status is one row. Replaying a batch changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, case, func, literal_column, or_, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert

from orchestrator.tracking import pipeline_view
from orchestrator.tracking.models import PipelineInfo, TaskInfo
from orchestrator.tracking.recording.merge import OUTCOME, PREFERRED, STATIC, fold


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
        values[column] = case(
            (new_wins, func.coalesce(ex[column], t[column])), else_=func.coalesce(t[column], ex[column])
        )
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
        "pipeline_id": record["pipeline_id"],
        "pipeline": record["pipeline"],
        "request_id": record.get("request_id"),
        "root_task_id": record.get("root_task_id"),
        "stage_count": int(record["stage_count"]),
        "stages": record["stages"],
        "created_at": datetime.fromtimestamp(float(record["at"]), UTC),
        "input": record.get("input"),
        "priority": record.get("priority"),
        "traceparent": record.get("traceparent"),
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
    """Upserts a batch inside the caller's transaction, then materialises the
    pipelines it touched; returns the rows written."""
    task_rows, pipeline_rows = split(records)
    if pipeline_rows:
        conn.execute(PIPELINE_INSERT, pipeline_rows)
    if task_rows:
        conn.execute(TASK_UPSERT, task_rows)
    touched = {row["pipeline_id"] for row in pipeline_rows}
    if task_rows:  # an outcome event names no pipeline: its row (written before) does
        touched.update(conn.execute(_PIPELINES_OF_TASKS, {"ids": [row["task_id"] for row in task_rows]}).scalars())
    materialise_pipelines(conn, sorted(touched))
    return len(task_rows) + len(pipeline_rows)


_PIPELINES_OF_TASKS = text(
    "SELECT DISTINCT pipeline_id FROM task_info WHERE task_id = ANY(:ids) AND pipeline_id IS NOT NULL"
)
# Locked in id order (a fixed order: concurrent drainers cannot deadlock), so of two
# transactions touching one pipeline the later one re-reads after the earlier committed.
_LOCK_PIPELINES = text(
    "SELECT pipeline_id, stages, stage_count FROM pipeline_info WHERE pipeline_id = ANY(:ids) "
    "ORDER BY pipeline_id FOR UPDATE"
)
_STAGE_ROWS = text(
    "SELECT task_id, task_name, stage_index, status, status_rank, status_at, result, error_type, error_message, "
    "retry_count, retry_reason, queue, worker, created_at, started_at, completed_at, runtime, pipeline_id "
    "FROM task_info WHERE pipeline_id = ANY(:ids)"
)
_SET_STATE = (
    update(PipelineInfo)
    .where(PipelineInfo.pipeline_id == bindparam("pid"))
    .values(
        stage_states=bindparam("stage_states"),
        overall_state=bindparam("overall_state"),
        completed_steps=bindparam("completed_steps"),
        finished_at=bindparam("finished_at"),
        updated_at=func.now(),
    )
)


def materialise_pipelines(conn: Connection, pipeline_ids: list[str]) -> int:
    """Recomputes the stored state of these pipelines from their task rows."""
    if not pipeline_ids:
        return 0
    heads = list(conn.execute(_LOCK_PIPELINES, {"ids": pipeline_ids}).mappings())
    if not heads:
        return 0
    rows: dict[str, list[dict[str, Any]]] = {}
    for row in conn.execute(_STAGE_ROWS, {"ids": [h["pipeline_id"] for h in heads]}).mappings():
        rows.setdefault(row["pipeline_id"], []).append(pipeline_view.entry_from_row(dict(row)))
    updates = []
    for head in heads:
        stages = pipeline_view.current_stages(head["stages"] or [], rows.get(head["pipeline_id"], []))
        overall, done, ended = pipeline_view.state_of(stages, head["stage_count"])
        updates.append(
            {
                "pid": head["pipeline_id"],
                "stage_states": storable(stages),
                "overall_state": overall,
                "completed_steps": done,
                "finished_at": None if ended is None else datetime.fromtimestamp(ended, UTC),
            }
        )
    conn.execute(_SET_STATE, updates)
    return len(updates)
