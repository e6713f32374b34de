"""Tracking records built from what Celery hands to its signals. A record is a
small dict: {"kind": "task", "task_id", "status", "rank", "at", ...columns} or
{"kind": "pipeline", ...}. Values are masked and summarised here, before they
leave the process."""

from __future__ import annotations

import json
import time
from typing import Any

from orchestrator.broker import headers as headers_
from orchestrator.masking import Masker
from orchestrator.tracking.reading.inputs import NOT_KEPT
from orchestrator.tracking.states import FAILURE, PENDING, RETRY, SKIPPED, STARTED, SUCCESS, rank

MAX_ERROR_CHARS = 2_000
MAX_TRACEBACK_CHARS = 20_000
MAX_OUTPUT_CHARS = 1_000_000  # larger stage outputs stay in the result backend only (stages pass blob refs)
PIPELINE_HEADERS = (headers_.PIPELINE_ID, headers_.PIPELINE, headers_.STAGE_INDEX, headers_.STAGE_COUNT)


def task_record(task_id: str, task_name: str, status: str, attempt: int | None, **fields: Any) -> dict[str, Any]:
    record = {
        "kind": "task",
        "task_id": task_id,
        "task_name": task_name,
        "status": status,
        "rank": rank(status, attempt),
        "at": time.time(),
    }
    record.update({k: v for k, v in fields.items() if v is not None})
    return record


def _int(value: Any) -> int | None:
    try:
        return None if value is None or value == "" else int(value)
    except (TypeError, ValueError):
        return None


def _place(headers: dict[str, Any]) -> dict[str, Any]:
    """A task's place in its pipeline, from the pipeline headers (pipelines.py)."""
    if not headers.get("pipeline_id"):
        return {}
    return {
        "pipeline_id": str(headers["pipeline_id"]),
        "pipeline": headers.get("pipeline"),
        "stage_index": _int(headers.get("stage_index")),
        "chain_total": _int(headers.get("stage_count")),
    }


# -- publish ------------------------------------------------------------------
def published(headers: dict[str, Any], body: Any, routing_key: str | None, masker: Masker) -> list[dict[str, Any]]:
    """PENDING for the published task and for every chain link it carries (the
    links are published later by the worker, or never if a stage fails), plus
    the pipeline row when a producer submits a pipeline."""
    task_id, name = headers.get("id"), headers.get("task")
    if not task_id or not name:
        return []
    args, kwargs, embed = body if isinstance(body, (list, tuple)) and len(body) == 3 else ((), {}, {})
    root_id = headers.get("root_id") or task_id
    retries = _int(headers.get("retries")) or 0
    links = list(reversed((embed or {}).get("chain") or []))  # Celery keeps the chain reversed
    place = _place(headers)
    top_level = not headers.get("parent_id")
    if not place and top_level and links:  # a plain chain: its place is its position
        place = {"stage_index": 0, "chain_total": len(links) + 1}
    records = [
        task_record(
            task_id,
            name,
            PENDING,
            retries,
            queue=routing_key,
            root_task_id=root_id,
            parent_task_id=headers.get("parent_id"),
            args=masker.clean(list(args or ())),
            kwargs=masker.clean(dict(kwargs or {})),
            retry_count=retries,
            **place,
        )
    ]
    parent = task_id
    for offset, link in enumerate(links, start=1):
        options = link.get("options") or {}
        link_id = options.get("task_id")
        if not link_id:
            break  # links without fixed ids cannot be tracked before they are published
        link_place = _place(options.get("headers") or {})
        if not link_place and "stage_index" in place:
            link_place = {"stage_index": place["stage_index"] + offset, "chain_total": place["chain_total"]}
        records.append(
            task_record(
                link_id,
                link.get("task") or "",
                PENDING,
                0,
                queue=options.get("queue"),
                root_task_id=root_id,
                parent_task_id=parent,
                **link_place,
            )
        )
        parent = link_id
    if place.get("pipeline_id") and top_level:
        submitted = masker.mask_keys(args[0]) if place.get("stage_index") == 0 and args else None
        records.append(pipeline_record(headers, records, submitted))
    return records


def pipeline_record(headers: dict[str, Any], tasks: list[dict[str, Any]], submitted: Any = None) -> dict[str, Any]:
    """The pipeline's row: its plan, and what a re-send needs from PostgreSQL alone (the
    first stage's input, whole but for masked secrets, and the API priority)."""
    return {
        "kind": "pipeline",
        "pipeline_id": str(headers["pipeline_id"]),
        "pipeline": headers.get("pipeline") or "",
        "request_id": headers.get("request_id"),
        "root_task_id": tasks[0]["root_task_id"],
        "stage_count": _int(headers.get("stage_count")) or len(tasks),
        "at": tasks[0]["at"],
        "stages": [
            {"stage_index": t.get("stage_index"), "task_name": t["task_name"], "task_id": t["task_id"]} for t in tasks
        ],
        "input": submitted,
        "priority": _int(headers.get(headers_.PRIORITY)),
        "traceparent": headers.get(headers_.PIPELINE_TRACE),
    }


# -- inside the worker ----------------------------------------------------------
def _request_fields(request: Any) -> dict[str, Any]:
    delivery = getattr(request, "delivery_info", None) or {}
    fields = {
        "worker": getattr(request, "hostname", None),
        "queue": delivery.get("routing_key"),
        "root_task_id": getattr(request, "root_id", None),
        "parent_task_id": getattr(request, "parent_id", None),
        # The broker's (a visibility-timeout restore) or recovery's (a lost stage sent again).
        "redelivered": bool(delivery.get("redelivered") or getattr(request, headers_.REDELIVERY, None)) or None,
    }
    fields.update(_place({k: getattr(request, k, None) for k in PIPELINE_HEADERS}))
    return fields


def _request_place(request: Any) -> dict[str, Any]:
    """The task's pipeline and stage, from its request's headers ({} outside a pipeline or
    without a request): every record of a stage names its pipeline, so its live state
    reaches the pipeline's live hash even when nothing else did."""
    if request is None:
        return {}
    place = _place({k: getattr(request, k, None) for k in PIPELINE_HEADERS})
    return {k: place[k] for k in ("pipeline_id", "stage_index") if place.get(k) is not None}


def started(task_name: str, request: Any) -> dict[str, Any]:
    attempt = request.retries or 0
    return task_record(request.id, task_name, STARTED, attempt, retry_count=attempt, **_request_fields(request))


def succeeded(task_name: str, request: Any, result: Any, runtime: float | None, masker: Masker) -> dict[str, Any]:
    """`result` summarised for people; `output` whole (secrets masked) for the next stage's
    re-send, unless it is too large to ride in a tracking record."""
    whole = masker.mask_keys(result)
    size = len(json.dumps(whole, default=str))
    return task_record(
        request.id,
        task_name,
        SUCCESS,
        request.retries or 0,
        result=masker.clean(result),
        output=whole if size <= MAX_OUTPUT_CHARS else {NOT_KEPT: f"{size} characters"},
        runtime=runtime,
        worker=getattr(request, "hostname", None),
        **_request_place(request),
    )


def retried(task_name: str, request: Any, reason: Any, masker: Masker) -> dict[str, Any]:
    attempt = request.retries or 0
    exc = getattr(reason, "exc", None) or reason
    return task_record(
        request.id,
        task_name,
        RETRY,
        attempt,
        retry_count=attempt + 1,
        retry_reason=_error_text(exc, masker),
        error_type=type(exc).__name__,
        worker=getattr(request, "hostname", None),
        **_request_place(request),
    )


def failed(
    task_id: str,
    task_name: str,
    request: Any | None,
    exception: BaseException | None,
    traceback: str | None,
    runtime: float | None,
    masker: Masker,
    worker: str | None = None,
) -> dict[str, Any]:
    """`request` is None when Celery reports the failure from the worker's parent
    process without the task's context (hard time limit): the attempt is then
    unknown and the failure final."""
    fields = {"worker": getattr(request, "hostname", None) or worker, **_request_place(request)}
    return task_record(
        task_id,
        task_name,
        FAILURE,
        None if request is None else (request.retries or 0),
        error_type=type(exception).__name__ if exception is not None else None,
        error_message=_error_text(exception, masker) if exception is not None else None,
        traceback=masker.scrub(traceback)[-MAX_TRACEBACK_CHARS:] if traceback else None,
        runtime=runtime,
        **fields,
    )


def skipped(links: list[tuple[str, str]], after_task_id: str, reason: str) -> list[dict[str, Any]]:
    """SKIPPED for chain links that will never run: [(task_id, task_name)] in order."""
    return [
        task_record(link_id, name, SKIPPED, 0, error_message=f"not run: {reason} ({after_task_id})")
        for link_id, name in links
    ]


def chain_links(chain: Any) -> list[tuple[str, str]]:
    """[(task_id, task_name)] of a request's remaining chain, next link first."""
    out = []
    for link in reversed(list(chain or [])):
        options = (link.get("options") if isinstance(link, dict) else None) or {}
        if options.get("task_id"):
            out.append((options["task_id"], link.get("task") or ""))
    return out


def _error_text(exc: Any, masker: Masker) -> str:
    text = f"{type(exc).__name__}: {exc}" if isinstance(exc, BaseException) else str(exc)
    return masker.scrub(text)[:MAX_ERROR_CHARS]
