"""Tracking metrics as JSON, and the gateway's own Prometheus metrics (without a
key when metrics_public is on)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.rest.deps import pipelines, require_api_key, require_metrics_access
from gateway.rest.errors import error_responses
from gateway.rest.schemas import Envelope
from gateway.service import PipelineGateway
from orchestrator.tracking.views import Metrics

router = APIRouter(tags=["metrics"])


@router.get(
    "/api/v1/metrics/summary",
    response_model=Envelope[Metrics],
    dependencies=[Depends(require_api_key)],
    responses=error_responses(401, 422, 503),
)
async def summary(
    window_hours: float = Query(24, gt=0, le=24 * 365), gateway: PipelineGateway = Depends(pipelines)
) -> Envelope[Metrics]:
    return Envelope(data=await gateway.metrics(window_hours))


@router.get(
    "/metrics", response_class=Response, include_in_schema=False, dependencies=[Depends(require_metrics_access)]
)
async def prometheus(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics_registry), media_type=CONTENT_TYPE_LATEST)
