"""The pipelines, declared in one registry, and how a producer submits one.

A pipeline is a Celery chain whose every stage carries the same headers
(pipeline_id, pipeline, stage_index, stage_count, request_id) and a task id
fixed at submit time, so every stage — including links that never run — is
known from the first publish."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from celery import Celery, chain, signature
from pydantic import BaseModel

from orchestrator.routing import queue_of
from orchestrator.tasks.ai_pipeline import AiPipelineInput
from orchestrator.tasks.document_pipeline import DocumentInput
from orchestrator.tasks.interview import AnswerInput
from orchestrator.tasks.resume_pipeline import ResumeInput
from orchestrator.tracking.masking import masker_for

# Celery priorities on Redis: 0 is served first. The API speaks 0–9 with 9 the
# most urgent (as AMQP does); see broker_priority().
DEFAULT_PRIORITY = 5
SUBMISSION_KEY = "aiworker:submission:{pipeline_id}"


class PreloadInput(BaseModel):
    pass


@dataclass(frozen=True)
class PipelineSpec:
    name: str
    stages: tuple[str, ...]
    input_model: type[BaseModel]
    description: str
    default_seconds: float  # estimated duration before any history exists


PIPELINES: dict[str, PipelineSpec] = {spec.name: spec for spec in (
    PipelineSpec("resume", (
        "tasks.resume_pipeline.parse_pdf",
        "tasks.resume_pipeline.generate_embeddings",
        "tasks.resume_pipeline.store_chunks",
    ), ResumeInput, "resume PDF → chunks → embeddings → PostgreSQL", 10),
    PipelineSpec("interview_answer", (
        "tasks.stt.recognize",
        "tasks.evaluator.analyze_answer",
        "tasks.question_generation.generate",
    ), AnswerInput, "spoken answer → transcript → evaluation → follow-up question", 30),
    PipelineSpec("document", (
        "tasks.document_pipeline.parse",
        "tasks.document_pipeline.chunk",
        "tasks.document_pipeline.embed",
        "tasks.document_pipeline.store",
    ), DocumentInput, "document → text → chunks → embeddings → PostgreSQL", 15),
    PipelineSpec("ai_pipeline", (
        "tasks.ai_pipeline.stage1_preprocessing",
        "tasks.ai_pipeline.stage2_feature_extraction",
        "tasks.ai_pipeline.stage3_model_inference",
        "tasks.ai_pipeline.stage4_post_processing",
    ), AiPipelineInput, "text → clean → embed → LLM → shaped result (seeds 001/004)", 20),
    PipelineSpec("llm_preload", (
        "tasks.question_generation.preload_model",
    ), PreloadInput, "load and warm the LLM before an interview starts", 30),
)}


def pipeline_of(name: str) -> PipelineSpec:
    try:
        return PIPELINES[name]
    except KeyError:
        raise KeyError(f"unknown pipeline {name!r}; known: {sorted(PIPELINES)}") from None


def broker_priority(priority: int) -> int:
    """API priority 0–9 (9 most urgent) → Redis transport priority (0 served first)."""
    if not 0 <= priority <= 9:
        raise ValueError(f"priority must be 0–9, got {priority}")
    return 9 - priority


@dataclass
class SubmittedPipeline:
    pipeline_id: str
    name: str
    stages: tuple[str, ...]
    task_ids: list[str]
    headers: dict[str, Any] = field(default_factory=dict)


def build(spec: PipelineSpec, payload: dict[str, Any], *, pipeline_id: str, request_id: str,
          priority: int = DEFAULT_PRIORITY, first_stage: int = 0, app: Celery | None = None,
          task_ids: list[str] | None = None) -> tuple[chain, list[str]]:
    """The chain of stages from `first_stage` on; the first gets `payload`,
    each later one the result of the stage before it. `task_ids`: the ids of
    those stages (a re-send keeps them), else new ones."""
    given = iter(task_ids or ())
    sigs, task_ids = [], []
    for index, name in enumerate(spec.stages):
        if index < first_stage:
            continue
        task_id = next(given, None) or str(uuid.uuid4())
        sig = signature(name, args=(payload,) if index == first_stage else (), app=app)
        sig.set(task_id=task_id, queue=queue_of(name), priority=broker_priority(priority), headers={
            "pipeline_id": pipeline_id, "pipeline": spec.name, "stage_index": index,
            "stage_count": len(spec.stages), "request_id": request_id,
        })
        sigs.append(sig)
        task_ids.append(task_id)
    return chain(*sigs), task_ids


def submit(app: Celery, name: str, payload: dict[str, Any], *, priority: int = DEFAULT_PRIORITY,
           request_id: str | None = None, pipeline_id: str | None = None) -> SubmittedPipeline:
    """Validates the payload against the pipeline's input model and sends the chain.
    Raises KeyError (unknown pipeline), pydantic.ValidationError (bad payload),
    ValueError (bad priority) and kombu's OperationalError (broker down)."""
    spec = pipeline_of(name)
    payload = spec.input_model.model_validate(payload).model_dump()
    pipeline_id = pipeline_id or str(uuid.uuid4())
    request_id = request_id or pipeline_id
    workflow, task_ids = build(spec, payload, pipeline_id=pipeline_id, request_id=request_id,
                               priority=priority, app=app)
    remember_submission(app, pipeline_id, {"pipeline": spec.name, "payload": payload, "priority": priority,
                                           "request_id": request_id, "task_ids": task_ids})
    workflow.apply_async()
    return SubmittedPipeline(pipeline_id, spec.name, spec.stages, task_ids)


def submission_key(pipeline_id: str) -> str:
    return SUBMISSION_KEY.format(pipeline_id=pipeline_id)


def remember_submission(app: Celery, pipeline_id: str, submission: dict[str, Any]) -> None:
    """The first stage's input as sent, so a first message the broker lost can be sent
    again (orchestrator.recovery); values under secret-looking keys masked, as in the
    result backend's copy (orchestrator.result_backend)."""
    resources = app.aiworker
    kept = masker_for(resources.settings).mask_keys(submission)
    resources.redis.set(submission_key(pipeline_id), json.dumps(kept), ex=resources.settings.result_expires)


def remembered_submission(app: Celery, pipeline_id: str) -> dict[str, Any] | None:
    raw = app.aiworker.redis.get(submission_key(pipeline_id))
    return json.loads(raw) if raw else None
