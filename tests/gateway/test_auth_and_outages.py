"""API keys on REST and gRPC through a real gateway process, the audit logs, and
outages (503, never a hang; the gateway's gRPC health mirrors /readyz)."""

from __future__ import annotations

import json
import time

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2

from aiworker.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from aiworker_local.gateway_process import start_gateway
from aiworker_local.infra import free_port
from aiworker_local.services import health_status, start_service
from gateway.security import ApiKeyring
from tests.support.keys import API_KEY

GATEWAY_SERVICE = "aiworker.gateway.v1.Gateway"
SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING


def log_lines(gateway) -> list[dict]:
    lines = []
    for line in gateway.process.log_path.read_text().splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            continue
    return lines


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise TimeoutError(f"not within {timeout}s: {what}")


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
            list(
                stub.WatchPipeline(
                    gateway_pb2.WatchPipelineRequest(pipeline_id="x"),
                    timeout=10,
                    metadata=(("authorization", "Bearer nope"),),
                )
            )
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        reply = stub.ListTasks(
            gateway_pb2.ListTasksRequest(hours=1, limit=1), timeout=10, metadata=(("x-api-key", API_KEY),)
        )
        assert isinstance(reply, gateway_pb2.ListTasksResponse)


def test_audit_log_has_key_id_route_status_and_never_the_key(gateway):
    httpx.get(f"{gateway.url}/api/v1/pipelines", headers={**gateway.headers, "X-Request-ID": "audit-me-1"})
    httpx.get(f"{gateway.url}/api/v1/pipelines", headers={"Authorization": "Bearer not-a-key-xyz"})
    time.sleep(0.5)
    log = gateway.process.log_path.read_text()
    line = next(line for line in log.splitlines() if "audit-me-1" in line and "http_request" in line)
    assert '"route": "/api/v1/pipelines"' in line and '"status": 200' in line and '"key_id"' in line
    assert API_KEY not in log and "not-a-key-xyz" not in log


def test_grpc_audit_line_has_request_id_key_id_method_code_duration_and_never_the_key(gateway):
    key_id = ApiKeyring.parse([API_KEY]).identify(API_KEY)
    with grpc.insecure_channel(gateway.grpc_address) as channel:
        stub = gateway_pb2_grpc.GatewayStub(channel)
        stub.ListTasks(
            gateway_pb2.ListTasksRequest(hours=1, limit=1),
            timeout=10,
            metadata=(("x-api-key", API_KEY), ("x-request-id", "grpc-audit-ok")),
        )
        with pytest.raises(grpc.RpcError):
            stub.GetPipelineStatus(
                gateway_pb2.GetPipelineStatusRequest(pipeline_id="missing"),
                timeout=10,
                metadata=(("authorization", f"Bearer {API_KEY}"), ("x-request-id", "grpc-audit-404")),
            )
        with pytest.raises(grpc.RpcError):  # right after a call with a key: no key id may linger
            stub.ListTasks(
                gateway_pb2.ListTasksRequest(hours=1),
                timeout=10,
                metadata=(("authorization", "Bearer not-a-key-grpc"), ("x-request-id", "grpc-audit-401")),
            )

    def finished(request_id: str) -> dict | None:
        return next(
            (
                line
                for line in log_lines(gateway)
                if line.get("request_id") == request_id and line.get("event") == "rpc_finished"
            ),
            None,
        )

    ok = wait_for(lambda: finished("grpc-audit-ok"), 5, "rpc_finished of the ListTasks call")
    assert ok["key_id"] == key_id and ok["method"] == "/aiworker.gateway.v1.Gateway/ListTasks"
    assert ok["code"] == "OK" and ok["duration_ms"] >= 0
    missing = wait_for(lambda: finished("grpc-audit-404"), 5, "rpc_finished of the GetPipelineStatus call")
    assert missing["key_id"] == key_id and missing["code"] == "NOT_FOUND"
    refused = wait_for(lambda: finished("grpc-audit-401"), 5, "rpc_finished of the refused call")
    assert refused["key_id"] is None and refused["code"] == "UNAUTHENTICATED"
    log = gateway.process.log_path.read_text()
    assert API_KEY not in log and "not-a-key-grpc" not in log


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
        # gRPC health says the same: the process is alive, the gateway is not ready
        assert health_status(down.grpc_address, GATEWAY_SERVICE, timeout=5) == NOT_SERVING
        assert health_status(down.grpc_address, "", timeout=5) == SERVING
    finally:
        down.stop()


def test_grpc_health_follows_readiness_while_a_service_is_down_and_back(stack, log_dir):
    parser = start_service("parser", log_dir)  # the gateway's own, so the stack's stays up
    gateway = start_gateway(
        {**stack.env, "AIWORKER_PARSER_ADDRESS": parser.address},
        log_dir,
        API_KEY,
        name="gateway-parser-outage",
        wait_ready=True,
    )

    def grpc_health() -> int:
        return health_status(gateway.grpc_address, GATEWAY_SERVICE, timeout=5)

    try:
        wait_for(lambda: grpc_health() == SERVING, 15, "gRPC health SERVING while /readyz is 200")
        parser.stop()
        wait_for(lambda: grpc_health() == NOT_SERVING, 20, "gRPC health NOT_SERVING while the parser is down")
        ready = httpx.get(f"{gateway.url}/readyz", timeout=10)
        assert ready.status_code == 503 and ready.json()["not_ready"] == ["parser"]
        assert health_status(gateway.grpc_address, "", timeout=5) == SERVING  # the process itself is fine
        parser.process.start()
        parser.wait_serving(60)
        wait_for(lambda: grpc_health() == SERVING, 20, "gRPC health SERVING again once the parser is back")
        assert httpx.get(f"{gateway.url}/readyz", timeout=10).status_code == 200
    finally:
        gateway.stop()
        parser.stop()
