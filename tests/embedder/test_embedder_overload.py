"""The batching queue under pressure, on a service computing one text per model
call: a full queue refuses calls with RESOURCE_EXHAUSTED while every call it took
gets exactly its own vectors; a call larger than a batch runs in chunks; a caller
whose deadline passes while it waits is never computed."""

from __future__ import annotations

import time

import grpc
import pytest

from aiworker.embedder.v1 import embedder_pb2, embedder_pb2_grpc
from aiworker_local.services import start_service
from tests.embedder.support import assert_close, batch_size_histogram, embed, vectors


@pytest.fixture(scope="module")
def tiny_queue_service(log_dir):
    # One text per model call, no waiting for company, and room for only 2 waiting texts.
    service = start_service(
        "embedder",
        log_dir,
        "--device",
        "cpu",
        "--max-queued-texts",
        "2",
        "--max-batch-size",
        "1",
        "--max-queue-delay-ms",
        "0",
    )
    yield service
    service.stop()


def test_overload_is_resource_exhausted_and_the_rest_succeed(tiny_queue_service, reference_model):
    calls = 48
    texts = [f"burst call {i}: describe your approach to load shedding in service {i}" for i in range(calls)]
    want = reference_model.encode(texts)
    with grpc.insecure_channel(tiny_queue_service.address) as channel:
        stub = embedder_pb2_grpc.EmbedderStub(channel)
        embed(stub, ["channel ready"])
        futures = [stub.Embed.future(embedder_pb2.EmbedRequest(texts=[text]), timeout=120) for text in texts]
        refused, served = [], 0
        for i, future in enumerate(futures):
            try:
                reply = future.result()
            except grpc.RpcError as err:
                assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, (err.code(), err.details())
                assert "queue is full" in err.details() and "the bound is 2" in err.details()
                refused.append(i)
                continue
            assert_close(vectors(reply), want[i : i + 1])
            served += 1
        assert refused, "no call was refused; the queue bound did not apply"
        assert served >= 3, f"only {served} of {calls} calls were served"
        # Once the burst is over the service takes calls again.
        assert_close(vectors(embed(stub, [texts[refused[0]]])), want[refused[0] : refused[0] + 1])


def test_a_large_call_runs_in_chunks_and_an_expired_caller_is_never_computed(tiny_queue_service, reference_model):
    big = [f"chunked text {i} about retry budgets and idempotent tasks" for i in range(32)]
    with grpc.insecure_channel(tiny_queue_service.address) as channel:
        stub = embedder_pb2_grpc.EmbedderStub(channel)
        embed(stub, ["channel ready"])
        before = batch_size_histogram(tiny_queue_service.metrics_port)
        # max-batch-size is 1: the 32 texts run as 32 model calls, reassembled in order.
        large = stub.Embed.future(embedder_pb2.EmbedRequest(texts=big), timeout=120)
        time.sleep(0.05)
        with pytest.raises(grpc.RpcError) as err:
            embed(stub, ["this caller gives up before its turn"], timeout=0.05)
        assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert_close(vectors(large.result()), reference_model.encode(big))
        time.sleep(0.2)
        after = batch_size_histogram(tiny_queue_service.metrics_port)
    # Exactly the 32 texts were computed: the expired caller left the queue uncomputed.
    assert after["sum"] - before["sum"] == 32
    assert after["count"] - before["count"] == 32
