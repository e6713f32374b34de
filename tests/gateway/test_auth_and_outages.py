"""API keys on REST and gRPC, the audit log, and a broker outage (503, never a hang)."""

from __future__ import annotations

import time

import grpc
import httpx
import pytest

from aiworker.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from tests.support.gateway import start_gateway
from tests.support.ports import free_port
from tests.support.gateway import API_KEY


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"X-API-Key": "wrong"},
                                     {"Authorization": API_KEY}])
def test_rest_needs_a_valid_key(gateway, headers):
    response = httpx.get(f"{gateway.url}/api/v1/pipelines", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "UNAUTHENTICATED"


def test_rest_accepts_bearer_and_x_api_key_and_leaves_health_and_docs_open(gateway):
    assert httpx.get(f"{gateway.url}/api/v1/pipelines", headers={"X-API-Key": API_KEY}).status_code == 200
    assert httpx.get(f"{gateway.url}/api/v1/pipelines", headers=gateway.headers).status_code == 200
    for open_path in ("/healthz", "/openapi.json", "/docs", "/dashboard/"):
        assert httpx.get(f"{gateway.url}{open_path}").status_code == 200


def test_grpc_needs_a_valid_key(gateway):
    with grpc.insecure_channel(gateway.grpc_address) as channel:
        stub = gateway_pb2_grpc.GatewayStub(channel)
        with pytest.raises(grpc.RpcError) as err:
            stub.ListTasks(gateway_pb2.ListTasksRequest(hours=1), timeout=10)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as err:
            list(stub.WatchPipeline(gateway_pb2.WatchPipelineRequest(pipeline_id="x"), timeout=10,
                                    metadata=(("authorization", "Bearer nope"),)))
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        reply = stub.ListTasks(gateway_pb2.ListTasksRequest(hours=1, limit=1), timeout=10,
                               metadata=(("x-api-key", API_KEY),))
        assert isinstance(reply, gateway_pb2.ListTasksResponse)


def test_audit_log_has_key_id_route_status_and_never_the_key(gateway):
    httpx.get(f"{gateway.url}/api/v1/pipelines", headers={**gateway.headers, "X-Request-ID": "audit-me-1"})
    httpx.get(f"{gateway.url}/api/v1/pipelines", headers={"Authorization": "Bearer not-a-key-xyz"})
    time.sleep(0.5)
    log = gateway.process.log_path.read_text()
    line = next(line for line in log.splitlines() if "audit-me-1" in line and "http_request" in line)
    assert '"route": "/api/v1/pipelines"' in line and '"status": 200' in line and '"key_id"' in line
    assert API_KEY not in log and "not-a-key-xyz" not in log


def test_auth_can_be_switched_off(stack, log_dir):
    open_gateway = start_gateway(stack.env, log_dir, "unused", name="gateway-open", auth_enabled="false")
    try:
        assert httpx.get(f"{open_gateway.url}/api/v1/pipelines").status_code == 200
    finally:
        open_gateway.stop()


def test_broker_down_is_503_with_a_message_not_a_hang(stack, log_dir):
    closed = f"redis://127.0.0.1:{free_port()}/0"
    env = {**stack.env, "AIWORKER_BROKER_URL": closed, "AIWORKER_REDIS_URL": closed, "AIWORKER_RESULT_BACKEND": closed}
    down = start_gateway(env, log_dir, API_KEY, name="gateway-no-broker")
    try:
        with down.client(timeout=30) as c:
            started = time.monotonic()
            response = c.post("/api/v1/tasks/ai-pipeline", json={"text": "anyone there?"})
            assert time.monotonic() - started < 15
            assert response.status_code == 503
            assert "broker" in response.json()["error"]["message"]
            ready = c.get("/readyz")
            assert ready.status_code == 503 and "redis" in ready.json()["not_ready"]
    finally:
        down.stop()
