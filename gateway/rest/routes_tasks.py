"""Seed 004's endpoints: start the AI pipeline, read a pipeline's status, task history."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request

from gateway.rest.deps import pipelines, require_api_key
from gateway.rest.schemas import AiPipelineRequest, Envelope, SeedPipelineStatus, SeedTask, Submitted
from gateway.service import PipelineGateway, Submission
from orchestrator.tracking.states import RECORDED
from orchestrator.tracking.views import HistoryPage, PipelineStatus

router = APIRouter(prefix="/api/v1/tasks", tags=["tasks (seed 004)"], dependencies=[Depends(require_api_key)])

STATUSES = "|".join(RECORDED)


def submitted(submission: Submission, message: str) -> Envelope[Submitted]:
    return Envelope(data=Submitted(
        pipeline_id=submission.pipeline_id, pipeline=submission.pipeline, status=submission.status,
        message=message, estimated_duration=submission.estimated_seconds, task_ids=submission.task_ids))


def seed_status(status: PipelineStatus) -> SeedPipelineStatus:
    return SeedPipelineStatus(
        pipeline_id=status.pipeline_id, pipeline=status.pipeline, overall_state=status.overall_state,
        total_steps=status.total_steps, completed_steps=status.completed_steps, progress=status.progress,
        message=status.message,
        tasks=[SeedTask(task_id=t.task_id, status=t.status, task_name=t.task_name, result=t.result, step=t.step,
                        ready=t.ready, retries=t.retries, error_type=t.error_type) for t in status.tasks])


@router.post("/ai-pipeline", response_model=Envelope[Submitted], status_code=202)
async def start_ai_pipeline(body: AiPipelineRequest, request: Request,
                            gateway: PipelineGateway = Depends(pipelines)) -> Envelope[Submitted]:
    submission = await gateway.submit("ai_pipeline", {"text": body.text, "options": body.options},
                                      priority=body.priority, request_id=request.state.request_id)
    return submitted(submission, "AI pipeline started")


@router.get("/ai-pipeline/{pipeline_id}/status", response_model=Envelope[SeedPipelineStatus])
async def ai_pipeline_status(pipeline_id: str, gateway: PipelineGateway = Depends(pipelines)
                             ) -> Envelope[SeedPipelineStatus]:
    return Envelope(data=seed_status(await gateway.status(pipeline_id)))


@router.get("/history", response_model=Envelope[HistoryPage])
async def history(
    hours: float = Query(24, gt=0, le=24 * 365, description="tasks created in the last N hours"),
    status: str | None = Query(None, pattern=f"^({STATUSES})$"),
    task_name: str | None = Query(None, max_length=255),
    pipeline: str | None = Query(None, max_length=64),
    limit: int = Query(100, ge=1, le=1000),
    cursor: str | None = Query(None, max_length=200, description="next_cursor of the previous page"),
    gateway: PipelineGateway = Depends(pipelines),
) -> Envelope[HistoryPage]:
    return Envelope(data=await gateway.history(hours, status, task_name, pipeline, limit, cursor))
