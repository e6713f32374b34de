"""Request and response bodies of the REST API. The task-chain shapes keep
the task-chain API's field names byte for byte (docs/decisions/0011-task-status-shapes.md) (`/api/v1/tasks/...`)."""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, Field

from orchestrator.pipelines.tasks.ai_pipeline import MAX_TEXT_CHARS, AiPipelineInput

T = TypeVar("T")


class Envelope(BaseModel, Generic[T]):
    success: bool = True
    data: T


class AiPipelineRequest(AiPipelineInput):  # the pipeline's own checks, so bad text or options are a 422 here
    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS, description="text to process")
    options: dict[str, Any] = Field(
        default_factory=dict, description='e.g. {"task": "summarize" | "keywords" | "sentiment"}'
    )
    priority: int = Field(5, ge=0, le=9, description="0–9, 9 most urgent")


class Submitted(BaseModel):
    pipeline_id: str
    pipeline: str
    status: str
    message: str
    estimated_duration: float = Field(description="seconds, from the tracked mean duration of the stages")
    task_ids: list[str]


class ChainTask(BaseModel):
    task_id: str
    status: str
    task_name: str
    result: str | None
    step: int
    ready: bool
    retries: int = 0
    error_type: str | None = None


class TaskChainStatus(BaseModel):
    pipeline_id: str
    pipeline: str
    overall_state: str
    total_steps: int
    completed_steps: int
    progress: float
    message: str | None = None
    tasks: list[ChainTask]


class Cancelled(BaseModel):
    pipeline_id: str
    revoked: list[str]
    running: list[str]
    terminated: bool


class StageType(BaseModel):
    task_name: str
    queue: str


class FileField(BaseModel):
    field: str
    description: str


class PipelineType(BaseModel):
    """A registered pipeline: what to send to `POST /api/v1/pipelines/{name}`."""

    name: str
    slug: str = Field(description="the name as URLs and the CLI spell it")
    description: str
    stages: list[StageType]
    files: list[FileField] = Field(description="multipart file fields it needs")
    input_schema: dict[str, Any] = Field(description="JSON schema of its input fields (files excluded)")
    default_priority: int
    default_seconds: float


class States(BaseModel):
    """The status vocabulary: the values of a task's `status` and of a pipeline's `overall_state`."""

    task_statuses: list[str] = Field(
        description="every status a tracked task can hold (history's `status` filter takes these); "
        "a running stage's live status can also read PROGRESS"
    )
    task_terminal: list[str] = Field(description="the task statuses that end it (`ready` is true)")
    pipeline_states: list[str] = Field(description="every overall state of a pipeline")
    pipeline_terminal: list[str] = Field(description="the overall states a pipeline ends in")


class PipelineResultBody(BaseModel):
    pipeline_id: str
    pipeline: str
    task_id: str = Field(description="the final stage's task")
    result: Any = Field(description="the final stage's result, whole (the status shows a summary)")


class ErrorDetail(BaseModel):
    field: str
    message: str


class ErrorInfo(BaseModel):
    code: str = Field(description="INVALID_ARGUMENT, UNAUTHENTICATED, NOT_FOUND, FAILED_PRECONDITION, GONE, …")
    message: str = Field(description="what is wrong, for people")
    details: list[ErrorDetail] | None = None


class ErrorBody(BaseModel):
    success: bool = False
    error: ErrorInfo


class SearchRequest(BaseModel):
    query: str = Field(min_length=1, max_length=2000, description="what to look for, in words")
    k: int = Field(5, ge=1, le=100, description="how many chunks")
    document_ids: list[str] | None = Field(None, max_length=1000, description="only within these documents")
    kind: Literal["resume", "document"] | None = Field(None, description="only documents of this kind")


class SearchHit(BaseModel):
    document_id: str
    kind: str
    filename: str
    title: str
    chunk_index: int
    page: int
    text: str
    score: float = Field(description="cosine similarity to the query (1 = the same direction)")


class SearchTimings(BaseModel):
    embed_ms: float = Field(description="embedding the query (svc-embedder)")
    search_ms: float = Field(description="finding the nearest chunks (PostgreSQL)")


class SearchResults(BaseModel):
    results: list[SearchHit]
    took: SearchTimings
