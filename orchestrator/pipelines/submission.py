"""Sending pipelines: a submission, and a re-send from some stage on.

A pipeline is a Celery chain whose every stage carries the same headers
(pipeline_id, pipeline, stage_index, stage_count, request_id) and a task id
fixed when it is sent, so every stage — including links that never run — is
known from the first publish (tracking records them PENDING).

`resend_from` serves both the gateway's retry of a failed pipeline (new task
ids from the failed stage on) and tracking's redelivery of a stage the broker
lost (the same task ids, the same place in the chain)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from celery import Celery, chain, signature

from orchestrator import keys
from orchestrator.broker import headers
from orchestrator.masking import masker_for
from orchestrator.pipelines.registry import DEFAULT_PRIORITY, PipelineSpec, pipeline_of
from svc_runtime import tracing


def broker_priority(priority: int) -> int:
    """API priority 0–9 (9 most urgent, as AMQP has it) → Redis transport priority
    (0 served first)."""
    if not 0 <= priority <= 9:
        raise ValueError(f"priority must be 0–9, got {priority}")
    return 9 - priority


@dataclass
class SubmittedPipeline:
    pipeline_id: str
    name: str
    stages: tuple[str, ...]
    task_ids: list[str]


def build(
    spec: PipelineSpec,
    payload: dict[str, Any],
    *,
    pipeline_id: str,
    request_id: str,
    priority: int = DEFAULT_PRIORITY,
    first_stage: int = 0,
    app: Celery | None = None,
    task_ids: list[str] | None = None,
    traceparent: str | None = None,
) -> tuple[chain, list[str]]:
    """The chain of stages from `first_stage` on; the first gets `payload`,
    each later one the result of the stage before it. `task_ids`: the ids of
    those stages (a re-send keeps them), else new ones. `traceparent`: the
    pipeline's trace (every stage's publish joins it). A stage sent again under
    its given id is marked a redelivery (its tracking row says so)."""
    given = iter(task_ids or ())
    sigs, ids = [], []
    for index, stage in enumerate(spec.stages):
        if index < first_stage:
            continue
        kept_id = next(given, None)
        task_id = kept_id or str(uuid.uuid4())
        sig = signature(stage.name, args=(payload,) if index == first_stage else (), app=app)
        sig.set(
            task_id=task_id,
            queue=stage.queue,
            priority=broker_priority(priority),
            headers={
                headers.PIPELINE_ID: pipeline_id,
                headers.PIPELINE: spec.name,
                headers.STAGE_INDEX: index,
                headers.STAGE_COUNT: len(spec.stages),
                headers.REQUEST_ID: request_id,
                headers.PRIORITY: priority,  # kept with the pipeline (a re-send's)
                **({headers.PIPELINE_TRACE: traceparent} if traceparent else {}),
                **({headers.REDELIVERY: True} if kept_id and index == first_stage else {}),
            },
        )
        sigs.append(sig)
        ids.append(task_id)
    return chain(*sigs), ids


def submit(
    app: Celery,
    name: str,
    payload: dict[str, Any],
    *,
    priority: int | None = None,
    request_id: str | None = None,
    pipeline_id: str | None = None,
) -> SubmittedPipeline:
    """Validates the payload against the pipeline's input model and sends the chain.
    Raises KeyError (unknown pipeline), pydantic.ValidationError (bad payload),
    ValueError (bad priority) and kombu's OperationalError (broker down)."""
    spec = pipeline_of(name)
    priority = spec.default_priority if priority is None else priority
    payload = spec.input_model.model_validate(payload).model_dump()
    pipeline_id = pipeline_id or str(uuid.uuid4())
    request_id = request_id or pipeline_id
    with tracing.pipeline_span(spec.name, pipeline_id=pipeline_id, request_id=request_id) as traceparent:
        workflow, task_ids = build(
            spec,
            payload,
            pipeline_id=pipeline_id,
            request_id=request_id,
            priority=priority,
            app=app,
            traceparent=traceparent,
        )
        remember_submission(
            app,
            pipeline_id,
            {
                "pipeline": spec.name,
                "payload": payload,
                "priority": priority,
                "request_id": request_id,
                "task_ids": task_ids,
            },
        )
        workflow.apply_async()
    return SubmittedPipeline(pipeline_id, spec.name, spec.stage_names, task_ids)


def resend_from(
    app: Celery,
    spec: PipelineSpec,
    pipeline_id: str,
    stage_index: int,
    payload: Any,
    *,
    task_ids: list[str] | None = None,
    root_id: str | None = None,
    parent_id: str | None = None,
    priority: int | None = None,
    request_id: str | None = None,
    traceparent: str | None = None,
) -> list[str]:
    """Sends the pipeline again from `stage_index` on, that stage getting `payload`,
    at the priority and with the request id it was submitted with (given, or as
    remembered in Redis). `task_ids`, `root_id`, `parent_id`: keep the stages' ids
    and place in the chain (a lost stage's redelivery); else new ids (a retry)."""
    submitted = {} if priority is not None and request_id else remembered_submission(app, pipeline_id) or {}
    priority = priority if priority is not None else submitted.get("priority")
    priority = priority if isinstance(priority, int) and 0 <= priority <= 9 else spec.default_priority
    workflow, ids = build(
        spec,
        payload,
        pipeline_id=pipeline_id,
        request_id=request_id or submitted.get("request_id") or pipeline_id,
        priority=priority,
        first_stage=stage_index,
        app=app,
        task_ids=task_ids,
        traceparent=traceparent,
    )
    workflow.apply_async(**({"root_id": root_id or ids[0], "parent_id": parent_id} if task_ids else {}))
    return ids


def remember_submission(app: Celery, pipeline_id: str, submission: dict[str, Any]) -> None:
    """The first stage's input as sent, so a first message the broker lost can be sent
    again (tracking's recovery); values under secret-looking keys masked, as in the
    result backend's copy (orchestrator.broker.result_backend)."""
    resources = app.aiworker
    kept = masker_for(resources.settings).mask_keys(submission)
    resources.redis.set(keys.submission(pipeline_id), json.dumps(kept), ex=resources.settings.result_expires)


def remembered_submission(app: Celery, pipeline_id: str) -> dict[str, Any] | None:
    raw = app.aiworker.redis.get(keys.submission(pipeline_id))
    return json.loads(raw) if raw else None
