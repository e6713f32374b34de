"""Generation stops when the client cancels or the deadline passes, and a busy
model refuses callers beyond its queue bound."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from aiworker.llm.v1 import llm_pb2
from tests.llm.support import (
    LONG_PROMPT,
    MAX_QUEUED_REQUESTS,
    completion_tokens_by_reason,
    generate,
    request,
    request_id,
    wait_for_event,
)

# Far more than the test waits for: were it generated, it would take minutes here.
LONG = 1500


def test_cancelled_stream_stops_generating(llm_stub, llm_service):
    before = completion_tokens_by_reason(llm_service).get("cancelled", (0.0, 0.0))
    rid = request_id()
    call = llm_stub.GenerateStream(request(LONG_PROMPT, max_new_tokens=LONG), timeout=300,
                                   metadata=(("x-request-id", rid),))
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
        llm_stub.Generate(request(LONG_PROMPT, max_new_tokens=LONG), timeout=3,
                          metadata=(("x-request-id", rid),))
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED

    finished = wait_for_event(llm_service, "generation_finished", rid)
    assert finished["finish_reason"] == "deadline_exceeded"
    assert finished["completion_tokens"] < LONG // 5, finished
    assert generate(llm_stub, request(max_new_tokens=4), timeout=60).text


def test_deadline_stops_a_stream_too(llm_stub, llm_service):
    rid = request_id()
    call = llm_stub.GenerateStream(request(LONG_PROMPT, max_new_tokens=LONG), timeout=4,
                                   metadata=(("x-request-id", rid),))
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
    running = llm_stub.GenerateStream(request(LONG_PROMPT, max_new_tokens=32), timeout=300)
    assert next(running).HasField("delta")  # it holds the model now

    callers = 2 + MAX_QUEUED_REQUESTS
    with ThreadPoolExecutor(callers) as pool:
        outcomes = list(pool.map(_outcome, [llm_stub] * callers))
    refused = [o for o in outcomes if isinstance(o, grpc.RpcError)]
    served = [o for o in outcomes if isinstance(o, llm_pb2.GenerateResponse)]
    assert refused, "no caller was refused: the queue bound did not apply"
    for error in refused:
        assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, (error.code(), error.details())
        assert "busy" in error.details() and f"limit {MAX_QUEUED_REQUESTS}" in error.details()
    assert served, "every waiting caller was refused"
    assert all(reply.text and reply.usage.completion_tokens > 0 for reply in served)
    assert len(refused) + len(served) == callers

    *_, last = running
    assert last.HasField("done") and last.done.usage.completion_tokens > 1


def _outcome(stub) -> llm_pb2.GenerateResponse | grpc.RpcError:
    try:
        return generate(stub, request(max_new_tokens=6), timeout=120)
    except grpc.RpcError as err:
        return err
