"""Assembling a pipeline's status from its rows (PostgreSQL), the tasks' live
hashes (fresher while the outbox drains) and the pipeline's progress hash."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from orchestrator.tracking.states import (
    FAILURE, PENDING, PROGRESS, RETRY, SKIPPED, STARTED, SUCCESS, is_ready, overall_state, skip_after_failure, wins,
)
from orchestrator.tracking.views import PipelineStatus, StageView

SUMMARY_CHARS = 200


def summary(value: Any) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= SUMMARY_CHARS else f"{text[:SUMMARY_CHARS - 1]}…"


def overlay_live(row: dict[str, Any], live: dict[str, str]) -> dict[str, Any]:
    """The row with the live hash's status when that is newer (not yet in PostgreSQL)."""
    if not live or "rank" not in live:
        return row
    live_rank, live_at = int(live["rank"]), float(live.get("at") or 0)
    if not wins(live_rank, live_at, row.get("status_rank"), row.get("status_at")) or (
            live_rank == row.get("status_rank") and live_at == row.get("status_at")):
        return row
    out = dict(row)
    out.update(status=live["status"], status_rank=live_rank, status_at=live_at,
               retry_count=max(int(live.get("retry_count") or 0), row.get("retry_count") or 0))
    for key in ("worker", "error_type"):
        out[key] = live.get(key) or row.get(key)
    if live.get("summary"):
        out["live_summary"] = live["summary"]
    if live.get("runtime"):
        out["runtime"] = float(live["runtime"])
    return out


def stages_of(plan: list[dict[str, Any]], rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per stage in order: the task rows (the newest per stage index),
    with plan entries standing in for tasks PostgreSQL has not seen yet."""
    by_stage: dict[int, dict[str, Any]] = {}
    for row in sorted(rows, key=lambda r: r["created_at"]):
        by_stage[row["stage_index"] if row.get("stage_index") is not None else len(by_stage)] = row
    for entry in plan:
        index = entry.get("stage_index")
        if index is not None and index not in by_stage:
            by_stage[index] = {"task_id": entry["task_id"], "task_name": entry["task_name"], "stage_index": index,
                               "status": PENDING, "status_rank": None, "status_at": None, "retry_count": 0}
    return [by_stage[i] for i in sorted(by_stage)]


def build(pipeline_id: str, name: str, stages: list[dict[str, Any]], progress: dict[str, str],
          created_at: datetime | None, source: str, stage_count: int | None = None) -> PipelineStatus:
    statuses = skip_after_failure([s["status"] for s in stages])
    views = []
    for step, (stage, status) in enumerate(zip(stages, statuses), start=1):
        result = _result(stage, status)
        if status == STARTED and progress and progress.get("task_id") == stage["task_id"] \
                and progress.get("status") == PROGRESS:
            status = PROGRESS
            result = summary({"stage": progress.get("stage"), "progress": _num(progress.get("progress")),
                              "message": progress.get("message")})
        views.append(StageView(
            task_id=stage["task_id"], task_name=stage.get("task_name") or "unknown", status=status, step=step,
            stage_index=stage.get("stage_index"), ready=is_ready(status), result=result,
            error_type=stage.get("error_type") if status in (FAILURE, RETRY) else None,
            retries=stage.get("retry_count") or 0, worker=stage.get("worker"), queue=stage.get("queue"),
            started_at=stage.get("started_at"), completed_at=stage.get("completed_at"), runtime=stage.get("runtime"),
        ))
    total = max(stage_count or 0, len(views))
    done = sum(1 for v in views if v.status == SUCCESS)
    overall = overall_state([v.status for v in views] + [PENDING] * (total - len(views)))
    live_progress = _num(progress.get("overall_progress")) if progress else None
    percent = 100.0 if overall == SUCCESS else live_progress if live_progress is not None else 100.0 * done / total
    return PipelineStatus(
        pipeline_id=pipeline_id, pipeline=name, overall_state=overall, total_steps=total, completed_steps=done,
        progress=round(float(percent), 1), message=(progress or {}).get("message"), created_at=created_at,
        tasks=views, source=source,
    )


def _result(stage: dict[str, Any], status: str) -> str | None:
    if status == SUCCESS:
        own = summary(stage.get("result"))
    elif status == RETRY:
        own = summary(stage.get("retry_reason"))
    elif status == SKIPPED:
        return summary(stage.get("error_message")) or "not run: an earlier stage failed"
    else:
        own = summary(stage.get("error_message"))
    return own if own is not None else stage.get("live_summary")  # not drained into PostgreSQL yet


def _num(value: Any) -> float | None:
    try:
        return None if value in (None, "") else float(value)
    except (TypeError, ValueError):
        return None


def from_epoch(value: Any) -> datetime | None:
    number = _num(value)
    return None if number is None else datetime.fromtimestamp(number, UTC)
