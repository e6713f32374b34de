"""Submitting the file pipelines (multipart), LLM preload, status, recent
pipelines, cancel, retry from the failed stage, and live events (SSE)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from sse_starlette.sse import EventSourceResponse

from gateway.rest.deps import pipelines, require_api_key
from gateway.rest.routes_tasks import submitted
from gateway.rest.schemas import Cancelled, Envelope, PreloadRequest, Submitted
from gateway.service import PipelineGateway, Upload
from orchestrator.tracking.views import PipelineStatus, PipelineSummary
from svc_runtime.errors import TooLarge

router = APIRouter(prefix="/api/v1/pipelines", tags=["pipelines"], dependencies=[Depends(require_api_key)])

Priority = Form(5, ge=0, le=9, description="0–9, 9 most urgent")


async def read_upload(file: UploadFile, limit: int) -> Upload:
    """Reads at most limit+1 bytes: an oversize upload is refused without
    holding all of it in memory."""
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(f"{file.filename or 'upload'}: over the {limit}-byte upload limit")
    return Upload(data, file.filename or "", file.content_type or "")


@router.post("/resume", response_model=Envelope[Submitted], status_code=202)
async def submit_resume(request: Request, file: UploadFile = File(description="the resume PDF"),
                        priority: int = Priority, gateway: PipelineGateway = Depends(pipelines)):
    upload = await read_upload(file, gateway.settings.max_upload_bytes)
    submission = await gateway.submit("resume", {}, {"pdf": upload}, priority, request.state.request_id)
    return submitted(submission, "resume pipeline started")


@router.post("/interview-answer", response_model=Envelope[Submitted], status_code=202)
async def submit_answer(request: Request, file: UploadFile = File(description="the spoken answer (wav, mp3, flac, ogg, m4a)"),
                        resume_id: str | None = Form(None, max_length=64, description="compare with this resume"),
                        question: str = Form("", max_length=2000, description="the question that was asked"),
                        language: str = Form("en", max_length=8),
                        priority: int = Priority, gateway: PipelineGateway = Depends(pipelines)):
    upload = await read_upload(file, gateway.settings.max_upload_bytes)
    payload = {"resume_id": resume_id or None, "question": question, "language": language}
    submission = await gateway.submit("interview_answer", payload, {"audio": upload}, priority,
                                      request.state.request_id)
    return submitted(submission, "interview answer pipeline started")


@router.post("/document", response_model=Envelope[Submitted], status_code=202)
async def submit_document(request: Request, file: UploadFile = File(description="a PDF or UTF-8 text file"),
                          priority: int = Priority, gateway: PipelineGateway = Depends(pipelines)):
    upload = await read_upload(file, gateway.settings.max_upload_bytes)
    submission = await gateway.submit("document", {}, {"document": upload}, priority, request.state.request_id)
    return submitted(submission, "document pipeline started")


@router.post("/llm-preload", response_model=Envelope[Submitted], status_code=202)
async def preload_llm(request: Request, body: PreloadRequest | None = None,
                      gateway: PipelineGateway = Depends(pipelines)):
    priority = body.priority if body else PreloadRequest().priority
    submission = await gateway.submit("llm_preload", {}, None, priority, request.state.request_id)
    return submitted(submission, "LLM preload started")


@router.get("", response_model=Envelope[list[PipelineSummary]])
async def recent_pipelines(limit: int = Query(20, ge=1, le=200), gateway: PipelineGateway = Depends(pipelines)):
    return Envelope(data=await gateway.recent(limit))


@router.get("/{pipeline_id}", response_model=Envelope[PipelineStatus])
async def pipeline_status(pipeline_id: str, gateway: PipelineGateway = Depends(pipelines)):
    return Envelope(data=await gateway.status(pipeline_id))


@router.post("/{pipeline_id}/cancel", response_model=Envelope[Cancelled])
async def cancel(pipeline_id: str, terminate: bool = Query(False, description="also stop the running stage"),
                 gateway: PipelineGateway = Depends(pipelines)):
    return Envelope(data=Cancelled(**await gateway.cancel(pipeline_id, terminate)))


@router.post("/{pipeline_id}/retry", response_model=Envelope[Submitted], status_code=202)
async def retry(pipeline_id: str, gateway: PipelineGateway = Depends(pipelines)):
    submission = await gateway.retry(pipeline_id)
    return submitted(submission, "pipeline re-run from its failed stage")


@router.get("/{pipeline_id}/events", response_class=EventSourceResponse,
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "`status` events (a PipelineStatus as JSON) until the pipeline ends"}})
async def events(pipeline_id: str, gateway: PipelineGateway = Depends(pipelines)):
    await gateway.status(pipeline_id)  # 404 before the stream starts, not inside it

    async def stream():
        async for status in gateway.watch(pipeline_id):
            yield {"event": "status", "data": status.model_dump_json(exclude={"source"})}
        yield {"event": "end", "data": "{}"}

    return EventSourceResponse(stream(), ping=15)
