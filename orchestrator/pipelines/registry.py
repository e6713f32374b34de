"""THE pipeline registry: every pipeline declared once. A pipeline is its
stages (task declarations, which carry their names and queues), its input
model, the files it accepts with their checks, a default duration and
priority, and a description. From it derive: Celery's routes (through the
declarations), the gateway's submission (REST `POST /api/v1/pipelines/{name}`
and gRPC `SubmitPipeline`), the API's pipeline types (and so the CLI), docs/reference/pipelines.md, tracking's
stage names and estimates.

Adding a pipeline: its task module under orchestrator/pipelines/tasks/ and one entry
below (docs/pipelines.md, "Adding a pipeline"). A pipeline from another package registers
itself with `register()` in a module named by AIWORKER_PIPELINE_MODULES."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel

from orchestrator.pipelines import uploads
from orchestrator.pipelines.declarations import TaskDeclaration
from orchestrator.pipelines.tasks import ai_pipeline, document_pipeline, document_qa, interview, resume_pipeline

DEFAULT_PRIORITY = 5  # API priorities are 0–9, 9 the most urgent


@dataclass(frozen=True)
class UploadSpec:
    """A file a pipeline takes: the input field that receives its blob reference,
    the check its bytes pass (returns the content type the pipeline gets), and
    which of `filename` / `content_type` the input model wants beside it."""

    field: str
    check: Callable[[uploads.IncomingFile, int], str]
    description: str
    with_filename: bool = False
    with_content_type: bool = False


@dataclass(frozen=True)
class PipelineSpec:
    name: str
    stages: tuple[TaskDeclaration, ...]
    input_model: type[BaseModel]
    description: str
    default_seconds: float  # estimated duration before any history exists
    uploads: tuple[UploadSpec, ...] = ()
    default_priority: int = DEFAULT_PRIORITY

    @property
    def stage_names(self) -> tuple[str, ...]:
        return tuple(stage.name for stage in self.stages)

    @property
    def slug(self) -> str:
        """The name as it appears in URLs and on the command line (interview-answer)."""
        return self.name.replace("_", "-")

    def upload(self, field_name: str) -> UploadSpec | None:
        return next((u for u in self.uploads if u.field == field_name), None)


class PreloadInput(BaseModel):
    pass


PDF = UploadSpec("pdf", uploads.check_pdf, "the resume PDF", with_filename=True)
DOCUMENT = UploadSpec(
    "document", uploads.check_document, "a PDF or UTF-8 text file", with_filename=True, with_content_type=True
)
AUDIO = UploadSpec("audio", uploads.check_audio, "the spoken answer (wav, mp3, flac, ogg, m4a, webm)")

PIPELINES: dict[str, PipelineSpec] = {}


def register(spec: PipelineSpec) -> PipelineSpec:
    known = PIPELINES.get(spec.name)
    if known is not None and known is not spec:
        raise ValueError(f"pipeline {spec.name!r} registered twice")
    PIPELINES[spec.name] = spec
    return spec


for _spec in (
    PipelineSpec(
        "resume",
        (resume_pipeline.parse_pdf, resume_pipeline.generate_embeddings, resume_pipeline.store_chunks),
        resume_pipeline.ResumeInput,
        "resume PDF → chunks → embeddings → PostgreSQL",
        10,
        uploads=(PDF,),
    ),
    PipelineSpec(
        "interview_answer",
        (interview.recognize, interview.analyze_answer, interview.generate),
        interview.AnswerInput,
        "spoken answer → transcript → evaluation → follow-up question",
        30,
        uploads=(AUDIO,),
    ),
    PipelineSpec(
        "document",
        (document_pipeline.parse, document_pipeline.chunk, document_pipeline.embed, document_pipeline.store),
        document_pipeline.DocumentInput,
        "document → text → chunks → embeddings → PostgreSQL",
        15,
        uploads=(DOCUMENT,),
    ),
    PipelineSpec(
        "ai_pipeline",
        (
            ai_pipeline.stage1_preprocessing,
            ai_pipeline.stage2_feature_extraction,
            ai_pipeline.stage3_model_inference,
            ai_pipeline.stage4_post_processing,
        ),
        ai_pipeline.AiPipelineInput,
        "text → clean → embed → LLM → shaped result: a summary, keywords or the sentiment",
        20,
    ),
    PipelineSpec(
        "document_qa",
        (document_qa.retrieve, document_qa.answer),
        document_qa.QuestionInput,
        "question → the nearest stored passages → an answer grounded in them, with citations (streamed)",
        20,
    ),
    PipelineSpec(
        "llm_preload",
        (interview.preload_model,),
        PreloadInput,
        "load and warm the LLM before an interview starts",
        30,
        default_priority=8,
    ),
):
    register(_spec)


def pipeline_of(name: str) -> PipelineSpec:
    """A pipeline by its name or its slug (`interview_answer` or `interview-answer`)."""
    spec = PIPELINES.get(name) or PIPELINES.get(name.replace("-", "_"))
    if spec is None:
        raise KeyError(f"unknown pipeline {name!r}; known: {', '.join(sorted(PIPELINES))}")
    return spec


def load_pipeline_modules(modules: list[str]) -> None:
    """Imports the modules of pipelines from other packages (AIWORKER_PIPELINE_MODULES):
    each declares its tasks and calls register()."""
    import importlib

    for module in modules:
        importlib.import_module(module)
