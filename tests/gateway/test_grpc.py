"""aiworker.gateway.v1 for other back ends, over a real channel."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import json_format, struct_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from aiworker.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from svc_parser.model import sample_pdf
from tests.support.keys import API_KEY

AUTH = (("authorization", f"Bearer {API_KEY}"),)


@pytest.fixture(scope="module")
def stub(gateway):
    channel = grpc.insecure_channel(gateway.grpc_address)
    yield gateway_pb2_grpc.GatewayStub(channel)
    channel.close()


def struct(**values) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    out.update(values)
    return out


def test_submit_watch_status_for_the_ai_pipeline(stub):
    reply = stub.SubmitPipeline(
        gateway_pb2.SubmitPipelineRequest(
            pipeline="ai_pipeline",
            input=struct(text="gRPC clients watch pipelines.", options={"task": "sentiment"}),
            priority=9,
        ),
        metadata=AUTH,
        timeout=30,
    )
    assert reply.pipeline_id and len(reply.task_ids) == 4 and reply.estimated_duration_s > 0
    updates = list(
        stub.WatchPipeline(gateway_pb2.WatchPipelineRequest(pipeline_id=reply.pipeline_id), metadata=AUTH, timeout=240)
    )
    assert updates[-1].overall_state == "SUCCESS"
    assert [t.task_id for t in updates[-1].tasks] == list(reply.task_ids)
    assert len(updates) >= 2
    status = stub.GetPipelineStatus(
        gateway_pb2.GetPipelineStatusRequest(pipeline_id=reply.pipeline_id), metadata=AUTH, timeout=10
    )
    assert status.total_steps == 4 and status.completed_steps == 4 and status.progress == 100
    assert status.created_at.seconds > 0


def test_submit_a_file_pipeline(stub):
    pdf = sample_pdf(["Choi. Platform engineer. Kubernetes operators."])
    reply = stub.SubmitPipeline(
        gateway_pb2.SubmitPipelineRequest(
            pipeline="resume",
            files=[gateway_pb2.UploadedFile(field="pdf", filename="cv.pdf", content_type="application/pdf", data=pdf)],
        ),
        metadata=AUTH,
        timeout=30,
    )
    final = list(
        stub.WatchPipeline(gateway_pb2.WatchPipelineRequest(pipeline_id=reply.pipeline_id), metadata=AUTH, timeout=240)
    )[-1]
    assert final.overall_state == "SUCCESS"


def test_list_tasks_pages_and_metrics(stub):
    first = stub.ListTasks(gateway_pb2.ListTasksRequest(hours=1, limit=2), metadata=AUTH, timeout=10)
    assert len(first.tasks) == 2 and first.next_cursor
    second = stub.ListTasks(
        gateway_pb2.ListTasksRequest(hours=1, limit=2, cursor=first.next_cursor), metadata=AUTH, timeout=10
    )
    assert {t.task_id for t in first.tasks}.isdisjoint({t.task_id for t in second.tasks})
    metrics = stub.GetMetrics(gateway_pb2.GetMetricsRequest(window_hours=1), metadata=AUTH, timeout=10)
    assert metrics.total_tasks > 0 and "gpu_queue" in metrics.queue_depth and metrics.by_task


@pytest.mark.parametrize(
    ("request_", "code", "needle"),
    [
        (gateway_pb2.SubmitPipelineRequest(pipeline="nope"), grpc.StatusCode.INVALID_ARGUMENT, "unknown pipeline"),
        (
            gateway_pb2.SubmitPipelineRequest(pipeline="ai_pipeline", input=struct(text="")),
            grpc.StatusCode.INVALID_ARGUMENT,
            "text",
        ),
        (gateway_pb2.SubmitPipelineRequest(pipeline="resume"), grpc.StatusCode.INVALID_ARGUMENT, "needs a file"),
        (
            gateway_pb2.SubmitPipelineRequest(
                pipeline="resume", files=[gateway_pb2.UploadedFile(field="pdf", data=b"x")]
            ),
            grpc.StatusCode.INVALID_ARGUMENT,
            "not a PDF",
        ),
        (
            gateway_pb2.SubmitPipelineRequest(pipeline="ai_pipeline", input=struct(text="x"), priority=42),
            grpc.StatusCode.INVALID_ARGUMENT,
            "priority",
        ),
    ],
)
def test_bad_submissions(stub, request_, code, needle):
    with pytest.raises(grpc.RpcError) as err:
        stub.SubmitPipeline(request_, metadata=AUTH, timeout=10)
    assert err.value.code() == code and needle in err.value.details()


def test_unknown_pipeline_is_not_found(stub):
    with pytest.raises(grpc.RpcError) as err:
        stub.GetPipelineStatus(gateway_pb2.GetPipelineStatusRequest(pipeline_id="missing"), metadata=AUTH, timeout=10)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as err:
        list(stub.WatchPipeline(gateway_pb2.WatchPipelineRequest(pipeline_id="missing"), metadata=AUTH, timeout=10))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_health_mirrors_readiness_and_reflection_lists_the_service(gateway):
    with grpc.insecure_channel(gateway.grpc_address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        status = health.Check(health_pb2.HealthCheckRequest(service="aiworker.gateway.v1.Gateway"), timeout=10)
        assert status.status == health_pb2.HealthCheckResponse.SERVING
        services = ProtoReflectionDescriptorDatabase(channel).get_services()
        assert "aiworker.gateway.v1.Gateway" in services


def test_get_pipeline_result(stub):
    reply = stub.SubmitPipeline(
        gateway_pb2.SubmitPipelineRequest(pipeline="ai_pipeline", input=struct(text="Results over gRPC.")),
        metadata=AUTH,
        timeout=30,
    )
    with pytest.raises(grpc.RpcError) as early:
        stub.GetPipelineResult(gateway_pb2.GetPipelineResultRequest(pipeline_id=reply.pipeline_id), metadata=AUTH)
    assert early.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    list(
        stub.WatchPipeline(gateway_pb2.WatchPipelineRequest(pipeline_id=reply.pipeline_id), metadata=AUTH, timeout=240)
    )
    result = stub.GetPipelineResult(
        gateway_pb2.GetPipelineResultRequest(pipeline_id=reply.pipeline_id), metadata=AUTH, timeout=10
    )
    assert result.task_id == reply.task_ids[-1] and result.pipeline == "ai_pipeline"
    value = json_format.MessageToDict(result.result)
    assert value["result"] == "pipeline_completed" and value["output"]["input_stats"]["chars"] == 18
    with pytest.raises(grpc.RpcError) as missing:
        stub.GetPipelineResult(gateway_pb2.GetPipelineResultRequest(pipeline_id="nope"), metadata=AUTH, timeout=10)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
