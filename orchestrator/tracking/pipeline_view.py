"""A pipeline's stages as one list of *stage entries*, and its status built
from them. Pure functions, shared by the writer (which materialises the
entries into `pipeline_info` after every batch) and the reader (which lays the
live entries of Redis over them).

A stage entry is one task's latest state, in the same shape whichever store it
comes from (times are epoch seconds):

    {task_id, task_name, stage_index, status, rank, at, created, started, completed,
     retry_count, worker, queue, error_type, summary, runtime}

`summary` is the short text a status shows for the task: its result when it
succeeded, the retry reason while it retries, the error when it failed."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from orchestrator.pipelines.progress import TASK_FIELD_PREFIX
from orchestrator.tracking.states import (
    FAILURE,
    PENDING,
    PROGRESS,
    RETRY,
    SKIPPED,
    STARTED,
    SUCCESS,
    TERMINAL,
    is_ready,
    overall_state,
    skip_after_failure,
    wins,
)
from orchestrator.tracking.views import PipelineStatus, StageView
from svc_runtime.tracing import trace_id_of

SUMMARY_CHARS = 200
NOT_RUN = "not run: an earlier stage failed"
_INTS = ("stage_index", "rank", "retry_count")
_FLOATS = ("at", "created", "started", "completed", "runtime")
PLAN_ONLY = ("stages", "created", "traceparent")  # plan fields of the live hash that are no progress


def summary(value: Any) -> str | None:
    if value is None:
        return None
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= SUMMARY_CHARS else f"{text[: SUMMARY_CHARS - 1]}…"


def outcome_summary(status: str, result: Any, error_message: Any, retry_reason: Any) -> str | None:
    if status == SUCCESS:
        return summary(result)
    if status == RETRY:
        return summary(retry_reason or error_message)
    return summary(error_message or retry_reason)


def _epoch(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def entry_from_row(row: dict[str, Any]) -> dict[str, Any]:
    """The entry of a task_info row."""
    return {
        "task_id": row["task_id"],
        "task_name": row.get("task_name"),
        "stage_index": row.get("stage_index"),
        "status": row["status"],
        "rank": row.get("status_rank"),
        "at": row.get("status_at"),
        "created": _epoch(row.get("created_at")),
        "started": _epoch(row.get("started_at")),
        "completed": _epoch(row.get("completed_at")),
        "retry_count": row.get("retry_count") or 0,
        "worker": row.get("worker"),
        "queue": row.get("queue"),
        "error_type": row.get("error_type"),
        "summary": outcome_summary(row["status"], row.get("result"), row.get("error_message"), row.get("retry_reason")),
        "runtime": row.get("runtime"),
    }


def entry_from_live(fields: dict[str, Any]) -> dict[str, Any]:
    """The entry of a task's live hash (strings, as Redis keeps them)."""
    entry: dict[str, Any] = {k: v for k, v in fields.items() if v not in (None, "")}
    for key in _INTS:
        if key in entry:
            entry[key] = int(float(entry[key]))
    for key in _FLOATS:
        if key in entry:
            entry[key] = float(entry[key])
    return entry


def merge(stored: dict[str, Any] | None, live: dict[str, Any]) -> dict[str, Any]:
    """One task's entry from PostgreSQL's and the live one: the live state where it is
    newer (not drained yet), else the stored one."""
    if stored is None:
        return live
    created = min((x for x in (stored.get("created"), live.get("created")) if x is not None), default=None)
    if "rank" in live and wins(live["rank"], live.get("at") or 0.0, stored.get("rank"), stored.get("at")):
        out = {**stored, **live, "retry_count": max(live.get("retry_count") or 0, stored.get("retry_count") or 0)}
        if "summary" not in live:  # its outcome text is not known yet (or is the stored one's)
            out["summary"] = stored.get("summary") if stored.get("status") == live.get("status") else None
    else:
        out = dict(stored)
    out["created"] = created
    return out


def current_stages(plan: Iterable[dict[str, Any]], entries: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per stage, in order: the newest task of each stage index (a retried
    stage has several), plan entries standing in for stages no task state names yet."""
    by_stage: dict[int, dict[str, Any]] = {}
    for entry in sorted(entries, key=lambda e: e.get("created") or 0.0):
        if entry.get("stage_index") is not None:
            by_stage[entry["stage_index"]] = entry
    for planned in plan:
        index = planned.get("stage_index")
        if index is not None and index not in by_stage:
            by_stage[index] = {
                "task_id": planned["task_id"],
                "task_name": planned.get("task_name"),
                "stage_index": index,
                "status": PENDING,
                "rank": None,
                "at": None,
                "retry_count": 0,
            }
    return [by_stage[i] for i in sorted(by_stage)]


def state_of(stages: list[dict[str, Any]], stage_count: int) -> tuple[str, int, float | None]:
    """(overall state, stages succeeded, when it ended) of a pipeline's current stages."""
    statuses = skip_after_failure([s["status"] for s in stages])
    statuses += [PENDING] * max(0, stage_count - len(statuses))
    overall = overall_state(statuses)
    done = sum(1 for s in statuses if s == SUCCESS)
    ended = None
    if overall in TERMINAL and all(s in TERMINAL for s in statuses):
        ended = max((s.get("completed") or s.get("at") or 0.0 for s in stages), default=None)
    return overall, done, ended


def build(
    pipeline_id: str,
    name: str,
    stages: list[dict[str, Any]],
    progress: dict[str, str],
    created: float | None,
    source: str,
    stage_count: int | None = None,
) -> PipelineStatus:
    """The status the APIs serve: stages after a failure SKIPPED, the running stage
    PROGRESS with its live message, the overall state and percentage."""
    statuses = skip_after_failure([s["status"] for s in stages])
    views = []
    for step, (stage, status) in enumerate(zip(stages, statuses), start=1):
        result = NOT_RUN if status == SKIPPED and not stage.get("summary") else stage.get("summary")
        if (
            status == STARTED
            and progress
            and progress.get("task_id") == stage["task_id"]
            and progress.get("status") == PROGRESS
        ):
            status = PROGRESS
            result = summary(
                {
                    "stage": progress.get("stage"),
                    "progress": _num(progress.get("progress")),
                    "message": progress.get("message"),
                }
            )
        views.append(
            StageView(
                task_id=stage["task_id"],
                task_name=stage.get("task_name") or "unknown",
                status=status,
                step=step,
                stage_index=stage.get("stage_index"),
                ready=is_ready(status),
                result=result,
                error_type=stage.get("error_type") if status in (FAILURE, RETRY) else None,
                retries=stage.get("retry_count") or 0,
                worker=stage.get("worker"),
                queue=stage.get("queue"),
                started_at=from_epoch(stage.get("started")),
                completed_at=from_epoch(stage.get("completed")) if status in TERMINAL else None,
                runtime=stage.get("runtime"),
            )
        )
    total = max(stage_count or 0, len(views))
    done = sum(1 for v in views if v.status == SUCCESS)
    overall = overall_state([v.status for v in views] + [PENDING] * (total - len(views)))
    live_progress = _num(progress.get("overall_progress")) if progress else None
    percent = (
        100.0
        if overall == SUCCESS
        else live_progress
        if live_progress is not None
        else 100.0 * done / total
        if total
        else 0.0
    )
    return PipelineStatus(
        pipeline_id=pipeline_id,
        pipeline=name,
        overall_state=overall,
        total_steps=total,
        completed_steps=done,
        progress=round(float(percent), 1),
        message=(progress or {}).get("message"),
        partial_output=(progress or {}).get("partial") if overall not in TERMINAL else None,
        created_at=from_epoch(created),
        tasks=views,
        source=source,
    )


def status_from(pipeline_id: str, head: dict[str, Any] | None, live: dict[str, str]) -> PipelineStatus | None:
    """A pipeline's status from its pipeline_info row (`head`: pipeline, stage_count,
    stages, stage_states, created_at; None when not drained yet) and its live hash
    (plan, progress and `t:<task_id>` task entries); None when neither knows it."""
    live_tasks = {
        field.removeprefix(TASK_FIELD_PREFIX): entry_from_live(json.loads(value))
        for field, value in live.items()
        if field.startswith(TASK_FIELD_PREFIX)
    }
    if head is not None:
        plan, name, stage_count, source = head["stages"] or [], head["pipeline"], head["stage_count"], "postgres"
        created, stored = _epoch(head["created_at"]), head.get("stage_states") or []
    elif live.get("stages"):
        plan, name, source = json.loads(live["stages"]), live.get("pipeline") or "", "live"
        stage_count, created, stored = int(live.get("stage_count") or len(plan)), _num(live.get("created")), []
    else:
        return None
    by_task = {entry["task_id"]: entry for entry in stored}
    for task_id, entry in live_tasks.items():
        by_task[task_id] = merge(by_task.get(task_id), {**entry, "task_id": task_id})
    progress = {k: v for k, v in live.items() if not k.startswith(TASK_FIELD_PREFIX) and k not in PLAN_ONLY}
    stages = current_stages(plan, by_task.values())
    status = build(pipeline_id, name, stages, progress, created, source, stage_count)
    status.trace_id = trace_id_of((head or {}).get("traceparent") or live.get("traceparent"))
    return status


def _num(value: Any) -> float | None:
    try:
        return None if value in (None, "") else float(value)
    except (TypeError, ValueError):
        return None


def from_epoch(value: Any) -> datetime | None:
    number = _num(value)
    return None if number is None else datetime.fromtimestamp(number, UTC)
