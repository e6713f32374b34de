"""The gateway process: FastAPI for REST and the dashboard, and — on the same
event loop — the gRPC server of aiworker.gateway.v1."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import Counter, Histogram

from gateway.grpc_api import ApiKeyInterceptor, GatewayServicer
from gateway.health import HealthAggregator
from gateway.openai import install as install_openai
from gateway.rest import routes_health, routes_metrics, routes_pipelines, routes_search, routes_states, routes_tasks
from gateway.rest.errors import error_body, install_error_handlers
from gateway.search import SearchService
from gateway.security import ApiKeyring
from gateway.service import PipelineGateway
from gateway.settings import GatewaySettings
from orchestrator.assembly import registry_queries, tracked_app
from orchestrator.settings import OrchestratorSettings
from svc_runtime import tracing
from svc_runtime.logs import configure_logging, get_logger
from svc_runtime.metrics import LATENCY_BUCKETS
from svc_runtime.server import create_server
from svc_runtime.settings import ServiceSettings

log = get_logger(__name__)
DASHBOARD = Path(__file__).resolve().parent / "dashboard"
HEALTH_MIRROR_SECONDS = 5.0
FORM_OVERHEAD_BYTES = 64 * 1024  # multipart boundaries and the small form fields beside the file


def create_app(
    settings: GatewaySettings | None = None, orchestrator: OrchestratorSettings | None = None, serve_grpc: bool = True
) -> FastAPI:
    settings = settings or GatewaySettings()
    orchestrator = orchestrator or OrchestratorSettings()
    configure_logging(settings.log_level, settings.log_format)
    if tracing.configure("aiworker-gateway"):
        tracing.instrument_celery()
        tracing.instrument_grpc_clients()
        tracing.instrument_data_clients()
    celery = tracked_app(orchestrator, producer=True)  # loads AIWORKER_PIPELINE_MODULES too
    pipelines = PipelineGateway(settings, celery, registry_queries(orchestrator))
    search = SearchService(celery)
    keyring = ApiKeyring.parse(settings.api_keys)
    health = HealthAggregator(orchestrator, settings, celery)
    grpc_settings = ServiceSettings(
        host=settings.host,
        port=settings.grpc_port,
        metrics_port=-1,
        log_level=settings.log_level,
        log_format=settings.log_format,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        server, port = create_server(
            grpc_settings,
            GatewayServicer(pipelines, search),
            interceptors=[ApiKeyInterceptor(keyring, settings.auth_enabled)],
        )
        app.state.metrics_registry = server.metrics.registry
        app.state.http_metrics = _http_metrics(server.metrics.registry)
        app.state.grpc_port = port
        mirror = None
        if serve_grpc:
            await server.start()
            mirror = asyncio.create_task(_mirror_readiness(server, health))
        log.info(
            "gateway_started",
            host=settings.host,
            port=settings.port,
            grpc_port=port,
            auth=settings.auth_enabled,
            keys=len(keyring.entries),
        )
        try:
            yield
        finally:
            if mirror:
                mirror.cancel()
                with suppress(asyncio.CancelledError):
                    await mirror
                await server.stop()
            await health.close()

    app = FastAPI(
        title="aiworker gateway",
        version="1.0",
        description="Submit AI pipelines, follow their progress, read task history and metrics. "
        "Every /api call needs an API key (Authorization: Bearer <key> or X-API-Key).",
        lifespan=lifespan,
    )
    app.state.gateway_settings = settings
    app.state.pipelines = pipelines
    app.state.search = search
    app.state.keyring = keyring
    app.state.health = health
    install_error_handlers(app)
    tracing.instrument_fastapi(app)
    for module in (routes_health, routes_tasks, routes_pipelines, routes_search, routes_metrics, routes_states):
        app.include_router(module.router)
    app.include_router(routes_pipelines.submit_router())
    app.include_router(routes_pipelines.types_router)
    install_openai(app, celery.aiworker, health)  # /v1: OpenAI-compatible, the services called directly
    app.mount("/dashboard", StaticFiles(directory=DASHBOARD, html=True), name="dashboard")

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/dashboard/")

    body_limit = settings.max_upload_bytes + FORM_OVERHEAD_BYTES

    @app.middleware("http")
    async def refuse_oversize_bodies(request: Request, call_next):
        """413 on the declared Content-Length, before the body is read or spooled to disk
        (read_upload still checks the file itself, also for bodies sent without a length)."""
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > body_limit:
            return JSONResponse(
                error_body(
                    "PAYLOAD_TOO_LARGE",
                    f"request body of {declared} bytes is over the {settings.max_upload_bytes}-byte upload limit",
                ),
                status_code=413,
            )
        return await call_next(request)

    @app.middleware("http")
    async def audit(request: Request, call_next):
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        request.state.request_id = request_id
        request.state.key_id = None
        started = time.perf_counter()
        status = 500
        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                response = await call_next(request)
                status = response.status_code
                response.headers["x-request-id"] = request_id
                return response
            finally:
                route = request.scope.get("route")
                path = getattr(route, "path", None) or request.url.path
                elapsed = time.perf_counter() - started
                metrics = getattr(request.app.state, "http_metrics", None)
                if metrics:
                    metrics[0].labels(request.method, path, str(status)).inc()
                    metrics[1].labels(request.method, path).observe(elapsed)
                if not path.startswith(("/healthz", "/readyz", "/dashboard")):
                    log.info(
                        "http_request",
                        method=request.method,
                        route=path,
                        status=status,
                        duration_ms=round(elapsed * 1000, 2),
                        key_id=request.state.key_id,
                        client=request.client.host if request.client else None,
                    )

    return app


def _http_metrics(registry) -> tuple[Counter, Histogram]:
    return (
        Counter("aiworker_http_requests", "REST requests", ("method", "route", "status"), registry=registry),
        Histogram(
            "aiworker_http_latency_seconds",
            "REST latency",
            ("method", "route"),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        ),
    )


async def _mirror_readiness(server, health: HealthAggregator) -> None:
    """The gateway's grpc.health.v1 status (for its service name) follows /readyz:
    SERVING while every required part is ready, NOT_SERVING while one is down
    (or readiness cannot be read). "" stays SERVING: the process is alive."""
    while True:
        try:
            readiness = await health.readiness()
            ready = readiness.ready
        except Exception as exc:  # noqa: BLE001 - keep mirroring
            log.warning("readiness_mirror_failed", error=str(exc))
            ready = False
        if ready != server.health.ready:
            log.info("grpc_health_changed", serving=ready)
        with suppress(Exception):  # nothing may end the mirror
            await server.set_ready(ready)
        await asyncio.sleep(HEALTH_MIRROR_SECONDS)
