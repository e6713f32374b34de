"""Probes: /healthz (the process), /readyz (everything it needs), /health/{part}.
No API key: orchestrators and load balancers call these."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from gateway.rest.errors import error_responses
from svc_runtime.catalogue import SERVICES
from svc_runtime.errors import NotFound

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict:
    return {"status": "ok"}


NOT_READY = {503: {"description": "not ready: the same body, naming the parts that are not (`not_ready`)"}}


@router.get("/readyz", responses=NOT_READY)
async def readyz(request: Request) -> JSONResponse:
    readiness = await request.app.state.health.readiness()
    body = readiness.as_dict()
    if not readiness.ready:
        body["not_ready"] = readiness.not_ready()
    return JSONResponse(body, status_code=200 if readiness.ready else 503)


@router.get("/health/{part}", responses={**NOT_READY, **error_responses(404)})
async def health_of(part: str, request: Request) -> JSONResponse:
    """One part: a service name (parser, embedder, llm, stt), redis, postgres or workers."""
    aggregator = request.app.state.health
    if part in SERVICES:
        results = [await aggregator.check_service(part)]
    elif part == "redis":
        results = [await aggregator.check_redis()]
    elif part == "postgres":
        results = [await aggregator.check_postgres()]
    elif part == "workers":
        results = await aggregator.check_workers()
    else:
        raise NotFound(f"unknown part {part!r}; known: {', '.join([*SERVICES, 'redis', 'postgres', 'workers'])}")
    ready = all(r.ready for r in results)
    return JSONResponse(
        {
            "ready": ready,
            "parts": {
                r.name: {
                    "status": r.status,
                    "ready": r.ready,
                    "device": r.device,
                    "detail": r.detail,
                    "latency_ms": r.latency_ms,
                    **({"replicas": r.replicas} if r.replicas else {}),
                }
                for r in results
            },
        },
        status_code=200 if ready else 503,
    )
