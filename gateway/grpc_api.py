"""aiworker.gateway.v1 over gRPC: the same PipelineGateway as REST, with an
API-key interceptor and the shared runtime's health, reflection and error table.
The gateway's own health mirrors /readyz."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import grpc
import structlog
from google.protobuf import json_format, timestamp_pb2

from aiworker.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from gateway.search import SearchService
from gateway.security import ApiKeyring, presented_key
from gateway.service import PipelineGateway
from orchestrator.pipelines.uploads import IncomingFile
from orchestrator.tracking.views import Metrics, PipelineStatus, TaskRecord
from svc_runtime.errors import InvalidArgument
from svc_runtime.server import ServicerBase

OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


def _timestamp(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


def status_message(status: PipelineStatus) -> gateway_pb2.PipelineStatus:
    return gateway_pb2.PipelineStatus(
        pipeline_id=status.pipeline_id,
        pipeline=status.pipeline,
        overall_state=status.overall_state,
        total_steps=status.total_steps,
        completed_steps=status.completed_steps,
        progress=status.progress,
        message=status.message or "",
        partial_output=status.partial_output or "",
        trace_id=status.trace_id or "",
        created_at=_timestamp(status.created_at),
        tasks=[
            gateway_pb2.StageStatus(
                task_id=t.task_id,
                task_name=t.task_name,
                status=t.status,
                step=t.step,
                ready=t.ready,
                result=t.result or "",
                error_type=t.error_type or "",
                retries=t.retries,
                worker=t.worker or "",
                runtime_s=t.runtime or 0.0,
            )
            for t in status.tasks
        ],
    )


def task_message(record: TaskRecord) -> gateway_pb2.TaskRecord:
    return gateway_pb2.TaskRecord(
        task_id=record.task_id,
        task_name=record.task_name,
        status=record.status,
        pipeline_id=record.pipeline_id or "",
        pipeline=record.pipeline or "",
        queue=record.queue or "",
        worker=record.worker or "",
        retry_count=record.retry_count,
        error_type=record.error_type or "",
        error_message=record.error_message or "",
        created_at=_timestamp(record.created_at),
        started_at=_timestamp(record.started_at),
        completed_at=_timestamp(record.completed_at),
        runtime_s=record.runtime or 0.0,
        result_json=json.dumps(record.result, ensure_ascii=False, default=str),
    )


def metrics_message(metrics: Metrics) -> gateway_pb2.MetricsSummary:
    return gateway_pb2.MetricsSummary(
        window_hours=metrics.window_hours,
        total_tasks=metrics.total_tasks,
        success_rate=metrics.success_rate or 0.0,
        retries=metrics.retries,
        chain_completion_rate=metrics.chains.completion_rate or 0.0,
        by_task=[
            gateway_pb2.TaskNameMetrics(
                task_name=t.task_name,
                total=t.total,
                succeeded=t.succeeded,
                failed=t.failed,
                success_rate=t.success_rate or 0.0,
                mean_seconds=t.mean_seconds or 0.0,
                p95_seconds=t.p95_seconds or 0.0,
                retries=t.retries,
            )
            for t in metrics.by_task
        ],
        errors_by_type=metrics.errors_by_type,
        queue_depth=metrics.queue_depth,
        queue_oldest_seconds=metrics.queue_oldest_seconds,
        unacked=metrics.unacked,
        by_pipeline=[
            gateway_pb2.PipelineMetrics(
                pipeline=p.pipeline,
                total=p.total,
                completed=p.completed,
                failed=p.failed,
                success_rate=p.success_rate or 0.0,
                mean_seconds=p.mean_seconds or 0.0,
                p95_seconds=p.p95_seconds or 0.0,
            )
            for p in metrics.by_pipeline
        ],
    )


class GatewayServicer(ServicerBase, gateway_pb2_grpc.GatewayServicer):
    service_name = gateway_pb2.DESCRIPTOR.services_by_name["Gateway"].full_name

    def __init__(self, pipelines: PipelineGateway, search: SearchService) -> None:
        self.pipelines = pipelines
        self.search = search
        self.device = "cpu"

    def register(self, server: grpc.aio.Server) -> None:
        gateway_pb2_grpc.add_GatewayServicer_to_server(self, server)

    async def SubmitPipeline(self, request: gateway_pb2.SubmitPipelineRequest, context: Any):
        payload = json_format.MessageToDict(request.input) if request.HasField("input") else {}
        files: dict[str, IncomingFile] = {}
        for item in request.files:
            if item.field in files:
                raise InvalidArgument(f"file field {item.field!r} given twice")
            files[item.field] = IncomingFile.from_bytes(item.data, item.filename, item.content_type)
        priority = request.priority if request.HasField("priority") else None
        request_id = dict(context.invocation_metadata() or ()).get("x-request-id")
        submission = await self.pipelines.submit(request.pipeline, payload, files, priority, request_id)
        return gateway_pb2.SubmitPipelineResponse(
            pipeline_id=submission.pipeline_id,
            status=submission.status,
            estimated_duration_s=submission.estimated_seconds,
            task_ids=submission.task_ids,
        )

    async def GetPipelineStatus(self, request: gateway_pb2.GetPipelineStatusRequest, context: Any):
        return status_message(await self.pipelines.status(request.pipeline_id))

    async def WatchPipeline(self, request: gateway_pb2.WatchPipelineRequest, context: Any):
        async for status in self.pipelines.watch(request.pipeline_id):
            yield status_message(status)

    async def ListTasks(self, request: gateway_pb2.ListTasksRequest, context: Any):
        page = await self.pipelines.history(
            request.hours or 24,
            request.status or None,
            request.task_name or None,
            request.pipeline or None,
            request.limit or 100,
            request.cursor or None,
        )
        return gateway_pb2.ListTasksResponse(
            tasks=[task_message(r) for r in page.items], next_cursor=page.next_cursor or ""
        )

    async def GetPipelineResult(self, request: gateway_pb2.GetPipelineResultRequest, context: Any):
        outcome = await self.pipelines.result(request.pipeline_id)
        reply = gateway_pb2.PipelineResult(
            pipeline_id=outcome.pipeline_id, pipeline=outcome.pipeline, task_id=outcome.task_id
        )
        json_format.ParseDict(json.loads(json.dumps(outcome.result, default=str)), reply.result)
        return reply

    async def Search(self, request: gateway_pb2.SearchRequest, context: Any):
        found = await self.search.search(
            request.query, request.k or 5, list(request.document_ids) or None, request.kind or None
        )
        return gateway_pb2.SearchResponse(
            results=[gateway_pb2.SearchHit(**hit.__dict__) for hit in found.results],
            embed_ms=found.embed_ms,
            search_ms=found.search_ms,
        )

    async def GetMetrics(self, request: gateway_pb2.GetMetricsRequest, context: Any):
        return metrics_message(await self.pipelines.metrics(request.window_hours or 24))


class ApiKeyInterceptor(grpc.aio.ServerInterceptor):
    """UNAUTHENTICATED for calls without a valid key (health and reflection are open).

    The caller's key id (never the key) is bound into the log context of the
    call, so the runtime's rpc_finished line (request id, method, code,
    duration) is the gRPC audit line, like REST's http_request line: key_id is
    the key's id, "anonymous" with auth off, null for an open or refused call.
    The interceptor runs in the RPC's own task, just before its handler, so the
    binding is that call's alone."""

    def __init__(self, keyring: ApiKeyring, enabled: bool) -> None:
        self.keyring = keyring
        self.enabled = enabled

    async def intercept_service(self, continuation: Callable, details: grpc.HandlerCallDetails):
        if details.method.startswith(OPEN_PREFIXES):
            structlog.contextvars.bind_contextvars(key_id=None)
            return await continuation(details)
        if not self.enabled:
            structlog.contextvars.bind_contextvars(key_id="anonymous")
            return await continuation(details)
        metadata = dict(details.invocation_metadata or ())
        key_id = self.keyring.identify(presented_key(metadata.get("authorization"), metadata.get("x-api-key")))
        structlog.contextvars.bind_contextvars(key_id=key_id)
        if key_id:
            return await continuation(details)
        handler = await continuation(details)
        message = "missing or invalid API key: send metadata 'authorization: Bearer <key>' or 'x-api-key'"

        async def deny_unary(request: Any, context: grpc.aio.ServicerContext) -> None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

        async def deny_stream(request: Any, context: grpc.aio.ServicerContext):
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)
            yield  # pragma: no cover - makes this an async generator

        if handler is not None and handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                deny_stream, handler.request_deserializer, handler.response_serializer
            )
        return grpc.unary_unary_rpc_method_handler(
            deny_unary,
            handler.request_deserializer if handler else None,
            handler.response_serializer if handler else None,
        )
