"""The status vocabulary (orchestrator/tracking/states.py), served so that clients
(the dashboard, the CLI) read it from the server instead of keeping copies."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from gateway.rest.deps import require_api_key
from gateway.rest.errors import error_responses
from gateway.rest.schemas import Envelope, States
from orchestrator.tracking.states import PIPELINE_STATES, PIPELINE_TERMINAL, RECORDED, TERMINAL

router = APIRouter(
    prefix="/api/v1/states", tags=["pipelines"], dependencies=[Depends(require_api_key)], responses=error_responses(401)
)


@router.get("", response_model=Envelope[States], summary="Task statuses and pipeline states")
async def states() -> Envelope[States]:
    """The values a task's `status` and a pipeline's `overall_state` take, and which of them
    are final: a client polls until `overall_state` is one of `pipeline_terminal`."""
    return Envelope(
        data=States(
            task_statuses=list(RECORDED),
            task_terminal=[s for s in RECORDED if s in TERMINAL],
            pipeline_states=list(PIPELINE_STATES),
            pipeline_terminal=[s for s in PIPELINE_STATES if s in PIPELINE_TERMINAL],
        )
    )
