"""Preload / Unload / ModelStatus and readiness, in eager and lazy mode."""

from __future__ import annotations

import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from aiworker.llm.v1 import llm_pb2, llm_pb2_grpc
from aiworker_local.services import start_service
from tests.llm.support import generate, log_events, request, request_id

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def status(stub) -> llm_pb2.ModelStatusResponse:
    return stub.ModelStatus(llm_pb2.ModelStatusRequest(), timeout=10)


def test_eager_mode_is_not_serving_until_the_model_is_loaded(llm_eager_start, llm_stub):
    assert llm_eager_start.first_health == NOT_SERVING
    assert llm_eager_start.first_state in (llm_pb2.MODEL_STATE_UNLOADED, llm_pb2.MODEL_STATE_LOADING)
    assert llm_eager_start.service.status() == SERVING
    now = status(llm_stub)
    assert now.state == llm_pb2.MODEL_STATE_LOADED
    assert now.device == "cpu" and now.context_length > 0 and now.model


def test_unload_then_preload_round_trip(llm_stub, llm_service):
    name = status(llm_stub).model
    assert llm_stub.Unload(llm_pb2.UnloadRequest(), timeout=60).was_loaded is True
    assert status(llm_stub).state == llm_pb2.MODEL_STATE_UNLOADED
    assert llm_stub.Unload(llm_pb2.UnloadRequest(), timeout=60).was_loaded is False
    assert llm_service.status() == SERVING  # by design: the next call reloads

    rid = request_id()
    preload = llm_stub.Preload(llm_pb2.PreloadRequest(), timeout=240, metadata=(("x-request-id", rid),))
    assert preload.already_loaded is False and preload.load_seconds > 0
    assert preload.model == name
    after = status(llm_stub)
    assert after.state == llm_pb2.MODEL_STATE_LOADED and after.model == name and after.context_length > 0
    [line] = log_events(llm_service, "preload_successful", rid)
    assert "Preload successful" in line["message"] and name in line["message"]
    assert line["seconds"] > 0

    again = llm_stub.Preload(llm_pb2.PreloadRequest(), timeout=60)
    assert again.already_loaded is True and again.load_seconds == 0
    assert generate(llm_stub, request(max_new_tokens=3)).text


IDLE_UNLOAD_SECONDS = 4


@pytest.fixture(scope="module")
def lazy_service(log_dir):
    service = start_service(
        "llm", log_dir, "--device", "cpu", "--load-mode", "lazy", "--idle-unload-seconds", str(IDLE_UNLOAD_SECONDS)
    )
    yield service
    service.stop()


def test_lazy_mode_serves_at_once_and_loads_on_the_first_generation(lazy_service):
    assert lazy_service.status() == SERVING
    with grpc.insecure_channel(lazy_service.address) as channel:
        stub = llm_pb2_grpc.LlmStub(channel)
        assert status(stub).state == llm_pb2.MODEL_STATE_UNLOADED
        assert not log_events(lazy_service, "model_loading")

        # A bad request is refused before anything loads.
        with pytest.raises(grpc.RpcError) as err:
            generate(stub, request(temperature=-1.0))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert status(stub).state == llm_pb2.MODEL_STATE_UNLOADED

        reply = generate(stub, request(max_new_tokens=4), timeout=240)
        assert reply.text and reply.usage.completion_tokens > 0
        assert status(stub).state == llm_pb2.MODEL_STATE_LOADED
        assert len(log_events(lazy_service, "model_loaded")) == 1
        # The engine logs through the standard library; its fields are keys of the JSON line.
        [loading] = log_events(lazy_service, "model_loading")
        assert loading["device"] == "cpu" and loading["logger"] == "svc_llm.model" and loading["level"] == "info"


def _model_state_on_health(service) -> str:
    with grpc.insecure_channel(service.address) as channel:
        reply, call = health_pb2_grpc.HealthStub(channel).Check.with_call(
            health_pb2.HealthCheckRequest(service=service.service_name), timeout=5
        )
    assert reply.status == SERVING  # whatever the model's state: the service loads on demand
    return dict(call.trailing_metadata())["x-aiworker-model-state"]


def test_an_idle_model_unloads_and_the_next_call_loads_it_again(lazy_service):
    loads = len(log_events(lazy_service, "model_loaded"))
    with grpc.insecure_channel(lazy_service.address) as channel:
        stub = llm_pb2_grpc.LlmStub(channel)
        first = generate(stub, request(max_new_tokens=8), timeout=240)
        assert status(stub).state == llm_pb2.MODEL_STATE_LOADED
        assert _model_state_on_health(lazy_service) == "loaded"

        deadline = time.monotonic() + IDLE_UNLOAD_SECONDS + 30
        while status(stub).state != llm_pb2.MODEL_STATE_UNLOADED and time.monotonic() < deadline:
            time.sleep(0.25)
        assert status(stub).state == llm_pb2.MODEL_STATE_UNLOADED
        assert _model_state_on_health(lazy_service) == "unloaded"
        assert [line["reason"] for line in log_events(lazy_service, "model_unloaded")][-1] == "idle"

        again = generate(stub, request(max_new_tokens=8), timeout=240)
        assert again.text == first.text and again.usage == first.usage
        assert status(stub).state == llm_pb2.MODEL_STATE_LOADED
        assert len(log_events(lazy_service, "model_loaded")) == loads + 1
