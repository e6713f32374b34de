"""Task-level endpoints in the task-chain shapes (docs/decisions/0011-task-status-shapes.md):
start the AI pipeline (a thin alias of `POST /api/v1/pipelines/ai_pipeline`), read
any pipeline as a task chain, and task history."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request

from gateway.rest.deps import pipelines, require_api_key
from gateway.rest.errors import error_responses
from gateway.rest.routes_pipelines import submitted
from gateway.rest.schemas import AiPipelineRequest, ChainTask, Envelope, Submitted, TaskChainStatus
from gateway.service import PipelineGateway
from orchestrator.tracking.states import RECORDED
from orchestrator.tracking.views import HistoryPage, PipelineStatus

router = APIRouter(
    prefix="/api/v1/tasks", tags=["tasks"], dependencies=[Depends(require_api_key)], responses=error_responses(401)
)

STATUSES = "|".join(RECORDED)


def chain_status(status: PipelineStatus) -> TaskChainStatus:
    """A pipeline's status as a chain of tasks."""
    return TaskChainStatus(
        pipeline_id=status.pipeline_id,
        pipeline=status.pipeline,
        overall_state=status.overall_state,
        total_steps=status.total_steps,
        completed_steps=status.completed_steps,
        progress=status.progress,
        message=status.message,
        tasks=[
            ChainTask(
                task_id=t.task_id,
                status=t.status,
                task_name=t.task_name,
                result=t.result,
                step=t.step,
                ready=t.ready,
                retries=t.retries,
                error_type=t.error_type,
            )
            for t in status.tasks
        ],
    )


@router.post(
    "/ai-pipeline", response_model=Envelope[Submitted], status_code=202, responses=error_responses(400, 422, 503)
)
async def start_ai_pipeline(
    body: AiPipelineRequest, request: Request, gateway: PipelineGateway = Depends(pipelines)
) -> Envelope[Submitted]:
    submission = await gateway.submit(
        "ai_pipeline",
        {"text": body.text, "options": body.options},
        priority=body.priority,
        request_id=request.state.request_id,
    )
    return submitted(submission, "AI pipeline started")


@router.get(
    "/ai-pipeline/{pipeline_id}/status",
    response_model=Envelope[TaskChainStatus],
    responses=error_responses(404, 503),
)
async def ai_pipeline_status(
    pipeline_id: str, gateway: PipelineGateway = Depends(pipelines)
) -> Envelope[TaskChainStatus]:
    return Envelope(data=chain_status(await gateway.status(pipeline_id)))


@router.get("/history", response_model=Envelope[HistoryPage], responses=error_responses(400, 422, 503))
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
