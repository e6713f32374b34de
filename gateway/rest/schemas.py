"""Request and response bodies of the REST API (seed 004's shapes)."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field

from orchestrator.tasks.ai_pipeline import MAX_TEXT_CHARS, AiPipelineInput

T = TypeVar("T")


class Envelope(BaseModel, Generic[T]):
    success: bool = True
    data: T


class AiPipelineRequest(AiPipelineInput):  # the pipeline's own checks, so bad text or options are a 422 here
    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS, description="text to process")
    options: dict[str, Any] = Field(default_factory=dict,
                                    description='e.g. {"task": "summarize" | "keywords" | "sentiment"}')
    priority: int = Field(5, ge=0, le=9, description="0–9, 9 most urgent")


class Submitted(BaseModel):
    pipeline_id: str
    pipeline: str
    status: str
    message: str
    estimated_duration: float = Field(description="seconds, from the tracked mean duration of the stages")
    task_ids: list[str]


class SeedTask(BaseModel):
    task_id: str
    status: str
    task_name: str
    result: str | None
    step: int
    ready: bool
    retries: int = 0
    error_type: str | None = None


class SeedPipelineStatus(BaseModel):
    pipeline_id: str
    pipeline: str
    overall_state: str
    total_steps: int
    completed_steps: int
    progress: float
    message: str | None = None
    tasks: list[SeedTask]


class Cancelled(BaseModel):
    pipeline_id: str
    revoked: list[str]
    running: list[str]
    terminated: bool


class PreloadRequest(BaseModel):
    priority: int = Field(8, ge=0, le=9)
