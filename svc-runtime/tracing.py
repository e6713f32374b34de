"""OpenTelemetry traces, off unless an OTLP endpoint is configured by the
standard variables (OTEL_EXPORTER_OTLP_ENDPOINT or
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT; OTEL_EXPORTER_OTLP_PROTOCOL http/protobuf;
OTEL_SERVICE_NAME per component; OTEL_SDK_DISABLED=true turns it off). Off,
nothing is installed: the API's no-op tracer costs nothing measurable.

Each process calls `configure(default_name)` once (a Celery worker: in every
pool child, after the fork) and then instruments what it has: the official
instrumentations for gRPC (client and server), Celery (publish and run, the
context carried in message headers), FastAPI and SQLAlchemy. Not Redis: a stage makes a
dozen small Redis calls (progress, the tracking outbox) whose spans would crowd the trace
and cost more than they tell (bench.orchestration's "traced" mode)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_configured: dict[str, Any] = {}


def enabled() -> bool:
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    return bool(os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


def configure(default_service_name: str) -> bool:
    """Sets up the tracer provider and its OTLP exporter (once per process); False when off."""
    if not enabled():
        return False
    if _configured.get("pid") == os.getpid():
        return True
    protocol = os.environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    )
    if protocol != "http/protobuf":
        raise ValueError(f"OTEL_EXPORTER_OTLP_PROTOCOL {protocol!r} is not supported here: use http/protobuf")
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    name = os.environ.get("OTEL_SERVICE_NAME") or default_service_name
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))  # reads the OTEL_* variables itself
    trace.set_tracer_provider(provider)  # once per process: a worker sets it in each pool child, never before
    _configured.update(pid=os.getpid(), provider=provider)
    return True


def shutdown() -> None:
    """Flushes what is buffered (a process about to exit)."""
    provider = _configured.get("provider")
    if provider is not None and _configured.get("pid") == os.getpid():
        provider.shutdown()


def grpc_server_interceptors() -> list:
    if not enabled():
        return []
    from opentelemetry.instrumentation.grpc import aio_server_interceptor

    return [aio_server_interceptor()]


def instrument_grpc_clients() -> None:
    """Sync gRPC channels made from now on carry the trace context (the orchestrator's clients)."""
    if enabled() and not _configured.get("grpc_client"):
        from opentelemetry.instrumentation.grpc import GrpcInstrumentorClient

        GrpcInstrumentorClient().instrument()
        _configured["grpc_client"] = True


def instrument_data_clients() -> None:
    """SQLAlchemy engines made from now on get spans."""
    if enabled() and not _configured.get("data"):
        from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

        # It declares SQLAlchemy < 2.1 and would do nothing on 2.1, where it works
        # (tests/tracing_otel checks the SQL spans).
        SQLAlchemyInstrumentor().instrument(skip_dep_check=True)
        _configured["data"] = True


def current_ids() -> tuple[str, str] | None:
    """(trace id, span id) in hex of the current span, None when there is none."""
    if not enabled():
        return None
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


def set_attributes(**attributes: Any) -> None:
    if not enabled():
        return
    from opentelemetry import trace

    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes({f"aiworker.{k}": v for k, v in attributes.items() if v is not None})


@contextmanager
def pipeline_span(name: str, **attributes: Any) -> Iterator[str | None]:
    """A span for a pipeline's submission; yields its W3C traceparent, which every stage's
    message carries so that each stage hangs from it: one trace per pipeline (None when off)."""
    if not enabled():
        yield None
        return
    from opentelemetry import trace
    from opentelemetry.propagate import inject

    with trace.get_tracer("aiworker").start_as_current_span(f"pipeline {name}") as span:
        span.set_attributes({f"aiworker.{k}": v for k, v in attributes.items() if v is not None})
        carrier: dict[str, str] = {}
        inject(carrier)
        yield carrier.get("traceparent")


@contextmanager
def attached(traceparent: str | None) -> Iterator[None]:
    """Runs the block in the context a traceparent names (a pipeline's submission)."""
    if not traceparent or not enabled():
        yield
        return
    from opentelemetry import context
    from opentelemetry.propagate import extract

    token = context.attach(extract({"traceparent": traceparent}))
    try:
        yield
    finally:
        context.detach(token)


def trace_id_of(traceparent: str | None) -> str | None:
    """The trace id (32 hex) of a W3C traceparent ("00-<trace id>-<span id>-<flags>")."""
    parts = (traceparent or "").split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else None


def instrument_celery() -> None:
    """Celery's publish and run spans, the context carried in message headers."""
    if enabled() and not _configured.get("celery"):
        from opentelemetry.instrumentation.celery import CeleryInstrumentor

        CeleryInstrumentor().instrument()
        _configured["celery"] = True


def instrument_fastapi(app: Any) -> None:
    if enabled():
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,readyz,metrics,dashboard")


def isolated_requests(app: Any) -> Any:
    """The ASGI app with each request started in an empty trace context. uvicorn starts the
    next request of a keep-alive connection from inside the previous one's task, whose
    span is still current, and the instrumentation would hang the new request under it."""
    if not enabled():
        return app
    from opentelemetry import context

    async def run(scope: Any, receive: Any, send: Any) -> None:
        token = context.attach(context.Context())
        try:
            await app(scope, receive, send)
        finally:
            context.detach(token)

    return run
