"""Batching without idle waiting, batches bounded by tokens, and idle unload, on
a service with a long batching delay (200 ms), a small token budget and a
short idle time."""

from __future__ import annotations

import threading
import time
import urllib.request

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from aiworker.embedder.v1 import embedder_pb2, embedder_pb2_grpc
from aiworker_local.services import start_service
from tests.embedder.support import assert_close, embed, vectors

DELAY_MS = 200
MAX_BATCH_TOKENS = 512
IDLE_UNLOAD_SECONDS = 3


@pytest.fixture(scope="module")
def service(log_dir):
    service = start_service(
        "embedder",
        log_dir,
        "--device",
        "cpu",
        "--max-queue-delay-ms",
        str(DELAY_MS),
        "--max-batch-tokens",
        str(MAX_BATCH_TOKENS),
        "--idle-unload-seconds",
        str(IDLE_UNLOAD_SECONDS),
    )
    yield service
    service.stop()


@pytest.fixture(scope="module")
def stub(service):
    with grpc.insecure_channel(service.address) as channel:
        yield embedder_pb2_grpc.EmbedderStub(channel)


def samples(service) -> dict[tuple[str, str], float]:
    """{(sample name, its `le` label or ""): value} of the service's /metrics."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{service.metrics_port}/metrics", timeout=5).read().decode()
    return {
        (sample.name, sample.labels.get("le", "")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_a_lone_caller_never_waits_for_company(service, stub):
    embed(stub, ["channel ready"])
    before = samples(service)
    for i in range(20):
        embed(stub, [f"one caller, one text at a time ({i})"])
    after = samples(service)

    def delta(name: str, le: str = "") -> float:
        return after[name, le] - before.get((name, le), 0.0)

    waits = delta("aiworker_embedder_batch_queue_seconds_count")
    assert waits == 20
    # Each found the model idle and ran at once: no wait came near the 200 ms delay.
    assert delta("aiworker_embedder_batch_queue_seconds_bucket", "0.025") == waits
    assert delta("aiworker_embedder_batch_queue_seconds_sum") / waits < 0.01


def test_batches_stay_within_the_token_budget_and_callers_get_their_own_vectors(service, stub, reference_model):
    # ~60-token texts: one call of 16 holds ~1000 tokens, twice the budget.
    long_texts = [f"Answer {i}: " + "the worker acknowledged the task late and retried it " * 6 for i in range(16)]
    short_texts = [f"short caller {i}" for i in range(8)]
    before = samples(service)
    got: dict[str, np.ndarray] = {}
    errors: list[BaseException] = []

    def caller(texts: list[str]) -> None:
        try:
            for text, vector in zip(texts, vectors(embed(stub, texts, timeout=120))):
                got[text] = vector
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=caller, args=(long_texts,))]
    threads += [threading.Thread(target=caller, args=([text],)) for text in short_texts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    everything = long_texts + short_texts
    assert_close(np.stack([got[t] for t in everything]), reference_model.encode(everything))

    after = samples(service)
    batches = after["aiworker_embedder_batch_cost_count", ""] - before["aiworker_embedder_batch_cost_count", ""]
    within = after["aiworker_embedder_batch_cost_bucket", str(float(MAX_BATCH_TOKENS))] - before.get(
        ("aiworker_embedder_batch_cost_bucket", str(float(MAX_BATCH_TOKENS))), 0.0
    )
    tokens = after["aiworker_embedder_batch_cost_sum", ""] - before["aiworker_embedder_batch_cost_sum", ""]
    assert tokens > 2 * MAX_BATCH_TOKENS
    assert batches >= 3 and within == batches, f"{batches:.0f} batches, {within:.0f} within {MAX_BATCH_TOKENS} tokens"


def _status(stub) -> embedder_pb2.ModelStatusResponse:
    return stub.ModelStatus(embedder_pb2.ModelStatusRequest(), timeout=10)


def _model_state_on_health(service) -> str:
    with grpc.insecure_channel(service.address) as channel:
        reply, call = health_pb2_grpc.HealthStub(channel).Check.with_call(
            health_pb2.HealthCheckRequest(service=service.service_name), timeout=5
        )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING  # whatever the model's state
    return dict(call.trailing_metadata())["x-aiworker-model-state"]


def _wait_unloaded(stub) -> None:
    deadline = time.monotonic() + IDLE_UNLOAD_SECONDS + 30
    while _status(stub).state != embedder_pb2.MODEL_STATE_UNLOADED and time.monotonic() < deadline:
        time.sleep(0.25)
    assert _status(stub).state == embedder_pb2.MODEL_STATE_UNLOADED


def test_an_idle_model_unloads_and_the_next_call_loads_it_again(service, stub):
    texts = ["vectors before and after an idle unload", "are the same vectors"]
    first = vectors(embed(stub, texts))
    loaded = _status(stub)
    assert loaded.state == embedder_pb2.MODEL_STATE_LOADED
    assert (loaded.dimension, loaded.max_tokens, loaded.device) == (384, 256, "cpu")
    assert _model_state_on_health(service) == "loaded"

    _wait_unloaded(stub)
    assert _model_state_on_health(service) == "unloaded"
    log = service.process.log_path.read_text()
    assert '"embedding_model_unloaded"' in log and '"reason": "idle"' in log

    again = vectors(embed(stub, texts))
    assert np.array_equal(again, first)  # the same weights, the same computation
    assert _status(stub).state == embedder_pb2.MODEL_STATE_LOADED


def test_preload_loads_an_unloaded_model(stub):
    _wait_unloaded(stub)
    reply = stub.Preload(embedder_pb2.PreloadRequest(), timeout=120)
    assert reply.already_loaded is False and reply.load_seconds > 0
    assert reply.model == "sentence-transformers/all-MiniLM-L6-v2"
    assert _status(stub).state == embedder_pb2.MODEL_STATE_LOADED
    again = stub.Preload(embedder_pb2.PreloadRequest(), timeout=60)
    assert again.already_loaded is True and again.load_seconds == 0
