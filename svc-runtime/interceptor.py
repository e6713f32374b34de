"""The one server interceptor: binds the request id (and pipeline/task ids) for
every log line of an RPC, counts and times it, and maps errors to status codes.

ServiceError subclasses → their code with the human message; anything else →
INTERNAL with the traceback logged (not sent). `grpc_code` is the one place a
domain error's status name becomes a grpc.StatusCode."""

from __future__ import annotations

import asyncio
import inspect
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import structlog
from google.protobuf.message import DecodeError

from svc_runtime.errors import InvalidArgument, ServiceError
from svc_runtime.logs import get_logger
from svc_runtime.metrics import ServiceMetrics

log = get_logger(__name__)

# Trailing metadata on every reply (health checks included): which device the
# model runs on, so a health aggregator learns it without another RPC.
DEVICE_KEY = "x-aiworker-device"
# Metadata keys carried across hops (Celery task → gRPC → service logs).
CONTEXT_KEYS = {"x-request-id": "request_id", "x-pipeline-id": "pipeline_id", "x-task-id": "task_id"}
_QUIET_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


def grpc_code(error: ServiceError) -> grpc.StatusCode:
    """The gRPC status of a domain error (its `code` names one)."""
    return grpc.StatusCode[error.code]


def _log_context(details: grpc.HandlerCallDetails) -> dict[str, str]:
    metadata = dict(details.invocation_metadata or ())
    bound = {name: str(metadata[key]) for key, name in CONTEXT_KEYS.items() if key in metadata}
    if "request_id" not in bound:
        bound["request_id"] = uuid.uuid4().hex
    return bound


class _Call:
    """Bookkeeping of one RPC: metrics, log context, error mapping."""

    def __init__(self, metrics: ServiceMetrics, method: str, bound: dict[str, str], access_log: bool) -> None:
        self.metrics = metrics.for_method(method)
        self.method = method
        self.bound = bound
        self.quiet = not access_log or method.startswith(_QUIET_PREFIXES)
        self.code = grpc.StatusCode.OK
        self.started = time.perf_counter()

    def __enter__(self) -> _Call:
        self._tokens = structlog.contextvars.bind_contextvars(**self.bound, method=self.method)
        self.metrics.in_flight.inc()
        return self

    def __exit__(self, *exc: Any) -> None:
        elapsed = time.perf_counter() - self.started
        m = self.metrics
        m.in_flight.dec()
        m.latency.observe(elapsed)
        m.requests(self.code.name).inc()
        if not self.quiet or self.code is not grpc.StatusCode.OK:
            log.info("rpc_finished", code=self.code.name, duration_ms=round(elapsed * 1000, 2))
        structlog.contextvars.reset_contextvars(**self._tokens)

    async def fail(self, context: grpc.aio.ServicerContext, exc: BaseException) -> None:
        """Aborts the RPC with the mapped status (raises grpc.aio.AbortError)."""
        if isinstance(exc, ServiceError):
            self.code = grpc_code(exc)
            log.info("rpc_rejected", code=self.code.name, error=exc.message)
            await context.abort(self.code, exc.message)
        self.code = grpc.StatusCode.INTERNAL
        log.error("rpc_internal_error", exc_info=exc)
        await context.abort(
            grpc.StatusCode.INTERNAL,
            f"internal error in {self.method} (request id {self.bound['request_id']}); see the service log",
        )

    def note_cancel(self, context: grpc.aio.ServicerContext) -> None:
        """The caller went away or its deadline passed (the handler was cancelled)."""
        remaining = context.time_remaining()
        expired = remaining is not None and remaining <= 0
        self.code = grpc.StatusCode.DEADLINE_EXCEEDED if expired else grpc.StatusCode.CANCELLED

    def note_abort(self, context: grpc.aio.ServicerContext) -> None:
        code = context.code()
        self.code = code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.UNKNOWN


def _decoder(deserializer: Callable | None, method: str) -> Callable[[Any], Any]:
    """Request bytes → message inside the handler, so bytes that are no valid
    message are INVALID_ARGUMENT (grpc's own decoding would answer UNKNOWN)."""
    if deserializer is None:
        return lambda raw: raw

    def decode(raw: bytes) -> Any:
        try:
            return deserializer(raw)
        except DecodeError as exc:
            raise InvalidArgument(f"the request to {method} is not a valid protobuf message: {exc}") from None

    return decode


def _wrap_unary(
    behavior: Callable,
    decode: Callable,
    metrics: ServiceMetrics,
    method: str,
    bound: dict[str, str],
    trailing: tuple[tuple[str, str], ...],
    access_log: bool,
) -> Callable:
    async def handler(raw: Any, context: grpc.aio.ServicerContext) -> Any:
        context.set_trailing_metadata(trailing)
        with _Call(metrics, method, bound, access_log) as call:
            try:
                result = behavior(decode(raw), context)
                if inspect.isawaitable(result):
                    result = await result
                return result
            except grpc.aio.AbortError:
                call.note_abort(context)
                raise
            except asyncio.CancelledError:
                call.note_cancel(context)
                raise
            except Exception as exc:  # noqa: BLE001 - mapped by the error table
                await call.fail(context, exc)

    return handler


def _wrap_stream(
    behavior: Callable,
    decode: Callable,
    metrics: ServiceMetrics,
    method: str,
    bound: dict[str, str],
    trailing: tuple[tuple[str, str], ...],
    access_log: bool,
) -> Callable:
    async def handler(raw: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        context.set_trailing_metadata(trailing)
        with _Call(metrics, method, bound, access_log) as call:
            try:
                result = behavior(decode(raw), context)
                if inspect.isasyncgen(result):
                    async for item in result:
                        yield item
                elif inspect.isawaitable(result):
                    await result  # a coroutine that writes with context.write()
                else:
                    for item in result:
                        yield item
            except grpc.aio.AbortError:
                call.note_abort(context)
                raise
            except asyncio.CancelledError:
                call.note_cancel(context)
                raise
            except Exception as exc:  # noqa: BLE001
                await call.fail(context, exc)

    return handler


class ServiceInterceptor(grpc.aio.ServerInterceptor):
    """Runs once per RPC, so the wrappers close over that call's ids."""

    def __init__(self, metrics: ServiceMetrics, device: str, access_log: bool = True) -> None:
        self.metrics = metrics
        self.trailing = ((DEVICE_KEY, device),)
        self.access_log = access_log

    async def intercept_service(
        self, continuation: Callable, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        bound = _log_context(handler_call_details)
        decode = _decoder(handler.request_deserializer, method)
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                _wrap_unary(handler.unary_unary, decode, self.metrics, method, bound, self.trailing, self.access_log),
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                _wrap_stream(handler.unary_stream, decode, self.metrics, method, bound, self.trailing, self.access_log),
                response_serializer=handler.response_serializer,
            )
        return handler  # streaming-request methods (reflection) pass through untouched
