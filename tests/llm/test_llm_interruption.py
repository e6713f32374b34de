"""Generation stops when the client cancels or the deadline passes, and a full
batch refuses callers beyond its queue bound."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from aiworker.llm.v1 import llm_pb2
from tests.llm.support import (
    LONG_PROMPT,
    MAX_BATCH_SEQUENCES,
    MAX_QUEUED_REQUESTS,
    completion_tokens_by_reason,
    generate,
    request,
    request_id,
    wait_for_event,
)

# Far more than the test waits for: were it generated, it would take minutes here.
LONG = 1500
FILL = 800  # MAX_BATCH_SEQUENCES of these fit the batch's token budget


def test_cancelled_stream_stops_generating(llm_stub, llm_service):
    before = completion_tokens_by_reason(llm_service).get("cancelled", (0.0, 0.0))
    rid = request_id()
    call = llm_stub.GenerateStream(
        request(LONG_PROMPT, max_new_tokens=LONG), timeout=300, metadata=(("x-request-id", rid),)
    )
    first = [next(call).delta.text for _ in range(3)]
    assert all(first)
    call.cancel()

    # The model is free again: a short generation gets its turn and finishes.
    reply = generate(llm_stub, request(max_new_tokens=4), timeout=60)
    assert reply.usage.completion_tokens > 0

    finished = wait_for_event(llm_service, "generation_finished", rid)
    assert finished["finish_reason"] == "cancelled"
    assert finished["max_new_tokens"] == LONG
    assert 3 <= finished["completion_tokens"] < LONG // 5, finished
    count, tokens = completion_tokens_by_reason(llm_service)["cancelled"]
    assert count == before[0] + 1
    assert tokens - before[1] == finished["completion_tokens"]


def test_deadline_stops_generating(llm_stub, llm_service):
    rid = request_id()
    with pytest.raises(grpc.RpcError) as err:
        llm_stub.Generate(request(LONG_PROMPT, max_new_tokens=LONG), timeout=3, metadata=(("x-request-id", rid),))
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED

    finished = wait_for_event(llm_service, "generation_finished", rid)
    assert finished["finish_reason"] == "deadline_exceeded"
    assert finished["completion_tokens"] < LONG // 5, finished
    assert generate(llm_stub, request(max_new_tokens=4), timeout=60).text


def test_deadline_stops_a_stream_too(llm_stub, llm_service):
    rid = request_id()
    call = llm_stub.GenerateStream(
        request(LONG_PROMPT, max_new_tokens=LONG), timeout=4, metadata=(("x-request-id", rid),)
    )
    received = []
    with pytest.raises(grpc.RpcError) as err:
        for message in call:
            received.append(message)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert not any(m.HasField("done") for m in received)
    finished = wait_for_event(llm_service, "generation_finished", rid)
    assert finished["finish_reason"] == "deadline_exceeded"
    assert finished["completion_tokens"] < LONG // 5, finished


def test_callers_beyond_the_queue_bound_get_resource_exhausted(llm_stub):
    # A full batch: MAX_BATCH_SEQUENCES streams (within the batch's token budget), each
    # running once it sent a delta.
    running = [
        llm_stub.GenerateStream(request(LONG_PROMPT, max_new_tokens=FILL), timeout=300)
        for _ in range(MAX_BATCH_SEQUENCES)
    ]
    try:
        for stream in running:
            assert next(stream).HasField("delta")

        callers = 2 + MAX_QUEUED_REQUESTS
        with ThreadPoolExecutor(callers) as pool:
            futures = [pool.submit(_outcome, llm_stub) for _ in range(callers)]
            refused = [f.result() for f in futures if _refused_soon(f)]
            for stream in running:  # a place in the batch frees up: the waiting caller runs
                stream.cancel()
            outcomes = [f.result() for f in futures]
    finally:
        for stream in running:
            stream.cancel()
    assert len(refused) == callers - MAX_QUEUED_REQUESTS, "the queue bound did not apply"
    for error in refused:
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, (error.code(), error.details())
        assert "busy" in error.details() and f"(limit {MAX_QUEUED_REQUESTS})" in error.details()
        assert f"batch limit {MAX_BATCH_SEQUENCES}" in error.details()
    served = [o for o in outcomes if isinstance(o, llm_pb2.GenerateResponse)]
    assert len(served) == MAX_QUEUED_REQUESTS
    assert all(reply.text and reply.usage.completion_tokens > 0 for reply in served)


def _refused_soon(future) -> bool:
    """A refusal comes at once; a caller that was queued is still waiting after a few seconds."""
    try:
        return isinstance(future.result(timeout=5), grpc.RpcError)
    except TimeoutError:
        return False


def _outcome(stub) -> llm_pb2.GenerateResponse | grpc.RpcError:
    try:
        return generate(stub, request(max_new_tokens=6), timeout=120)
    except grpc.RpcError as err:
        return err
