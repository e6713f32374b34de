"""Continuous batching on the session's service (bundled SmolLM2-135M, CPU,
MAX_BATCH_SEQUENCES running together): concurrent generations share decode
steps, join and leave the batch between steps, and each gets exactly the text
it gets alone.

Why greedy parity holds exactly: a sequence's prefill runs alone, and in a
decode step only the matmuls (projections, MLP, LM head) are batched; attention
runs per sequence over its own keys (svc_llm.ragged), so nothing is padded. A
batched matmul may round the last bits differently from a one-row one (MKL
picks its kernel by the row count): logits then differ by < 1e-4, while the
smallest gap between the two best logits along these prompts' greedy paths is
above 5e-3, so no token can flip."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from aiworker.llm.v1 import llm_pb2
from tests.llm.support import (
    LONG_PROMPT,
    MAX_BATCH_SEQUENCES,
    MAX_NEW_TOKENS_LIMIT,
    generate,
    metric,
    request,
    request_id,
    stream,
    wait_for_event,
)

# Different prompts and lengths: some end on EOS early, some at max_new_tokens,
# so sequences leave the batch at different steps while others join.
CASES = [
    (LONG_PROMPT, 40),
    ("Describe your experience building backend services in Python.", 36),
    ("Explain how a Celery worker retries a failed task, step by step.", 28),
    ("Name three colors.", 40),
    ("What is the capital of France? Answer in one sentence.", 24),
]


def _batch_histogram(service) -> tuple[float, float, float]:
    """(decode steps, steps with fewer than MAX_BATCH_SEQUENCES sequences, tokens generated)."""
    below = metric(service, "aiworker_llm_batch_size_bucket", le=f"{MAX_BATCH_SEQUENCES - 1}.0")
    steps = metric(service, "aiworker_llm_batch_size_count")
    return steps, below, metric(service, "aiworker_llm_generated_tokens_total")


def test_concurrent_greedy_generations_equal_each_alone(llm_stub, llm_service):
    alone = [generate(llm_stub, request(prompt, max_new_tokens=n)) for prompt, n in CASES]
    assert {reply.finish_reason for reply in alone} == {llm_pb2.FINISH_REASON_EOS, llm_pb2.FINISH_REASON_LENGTH}

    steps_before, below_before, tokens_before = _batch_histogram(llm_service)
    results: dict[int, tuple[str, llm_pb2.GenerationDone | llm_pb2.GenerateResponse]] = {}
    first_delta = [threading.Event() for _ in CASES]

    def streamed(i: int) -> None:
        prompt, n = CASES[i]
        deltas = []
        done = None
        for message in llm_stub.GenerateStream(request(prompt, max_new_tokens=n), timeout=300):
            if message.HasField("delta"):
                deltas.append(message.delta.text)
                first_delta[i].set()
            else:
                done = message.done
        results[i] = ("".join(deltas), done)

    def unary(i: int) -> None:
        prompt, n = CASES[i]
        reply = generate(llm_stub, request(prompt, max_new_tokens=n), timeout=300)
        results[i] = (reply.text, reply)

    with ThreadPoolExecutor(len(CASES)) as pool:
        # Three streams start together; the rest join once those are decoding, the
        # last one waiting for a place (the batch holds MAX_BATCH_SEQUENCES).
        futures = [pool.submit(streamed, i) for i in range(3)]
        for event in first_delta[:3]:
            assert event.wait(120)
        futures += [pool.submit(unary, i) for i in range(3, len(CASES))]
        for future in futures:
            future.result()

    for i, reply in enumerate(alone):
        text, together = results[i]
        assert text == reply.text, f"case {i}: batched text differs from the text alone"
        assert together.finish_reason == reply.finish_reason
        assert together.usage == reply.usage

    steps, below, tokens = _batch_histogram(llm_service)
    assert steps - steps_before > 0
    assert below - below_before < steps - steps_before, f"no decode step ran {MAX_BATCH_SEQUENCES} sequences"
    # The counter counts every token once, whichever step (prefill or decode) made it.
    assert tokens - tokens_before == sum(reply.usage.completion_tokens for reply in alone)
    assert metric(llm_service, "aiworker_llm_running_sequences") == 0
    assert metric(llm_service, "aiworker_llm_waiting_sequences") == 0


def test_sampling_stays_per_request_inside_a_batch(llm_stub):
    prompt = "Give me a haiku about autumn rain."
    sampled = [request(prompt, max_new_tokens=16, temperature=0.9, top_p=0.9, seed=seed) for seed in (7, 8)]
    greedy = request(prompt, max_new_tokens=16)
    alone = [generate(llm_stub, req).text for req in (*sampled, greedy)]
    with ThreadPoolExecutor(3) as pool:
        together = list(pool.map(lambda req: generate(llm_stub, req, timeout=300).text, (*sampled, greedy)))
    assert together == alone  # each request's own generator and settings, whoever shares its steps
    assert alone[0] != alone[1]  # the seed matters: the two sampled requests did not share a generator


def test_a_cancelled_sequence_leaves_and_the_others_go_on(llm_stub, llm_service):
    prompt, n = CASES[1]
    want = generate(llm_stub, request(prompt, max_new_tokens=n)).text
    rid = request_id()
    leaving = llm_stub.GenerateStream(
        request(LONG_PROMPT, max_new_tokens=1000), timeout=300, metadata=(("x-request-id", rid),)
    )
    assert next(leaving).HasField("delta")
    with ThreadPoolExecutor(1) as pool:
        staying = pool.submit(stream, llm_stub, request(prompt, max_new_tokens=n), 300)
        time.sleep(0.5)
        leaving.cancel()
        deltas, done = staying.result()
    assert "".join(deltas) == want
    finished = wait_for_event(llm_service, "generation_finished", rid)
    assert finished["finish_reason"] == "cancelled" and finished["completion_tokens"] < 1000 // 5


def test_a_deadline_passed_mid_batch_ends_that_request_only(llm_stub, llm_service):
    prompt, n = CASES[2]
    want = generate(llm_stub, request(prompt, max_new_tokens=n)).text
    rid = request_id()
    with ThreadPoolExecutor(2) as pool:
        late = pool.submit(
            llm_stub.Generate,
            request(LONG_PROMPT, max_new_tokens=1000),
            timeout=2,
            metadata=(("x-request-id", rid),),
        )
        staying = pool.submit(stream, llm_stub, request(prompt, max_new_tokens=n), 300)
        deltas, _ = staying.result()
        try:
            late.result()
            raise AssertionError("the request with a 2 s deadline finished 1000 tokens")
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "".join(deltas) == want
    finished = wait_for_event(llm_service, "generation_finished", rid)
    assert finished["finish_reason"] == "deadline_exceeded" and finished["completion_tokens"] < 1000 // 5


def test_a_newcomer_waits_while_the_token_budget_is_full(llm_stub, llm_service):
    # Each reserves prompt + MAX_NEW_TOKENS_LIMIT tokens: more than half the batch's budget.
    big = request(LONG_PROMPT, max_new_tokens=MAX_NEW_TOKENS_LIMIT)
    rids = [request_id(), request_id()]
    first = llm_stub.GenerateStream(big, timeout=300, metadata=(("x-request-id", rids[0]),))
    started = threading.Event()
    # Read the first stream as a client does (a reader that stops would stall the connection).
    reader = threading.Thread(target=_drain, args=(first, started), daemon=True)
    reader.start()
    assert started.wait(60)
    second = llm_stub.GenerateStream(big, timeout=300, metadata=(("x-request-id", rids[1]),))
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            running = metric(llm_service, "aiworker_llm_running_sequences")
            waiting = metric(llm_service, "aiworker_llm_waiting_sequences")
            if (running, waiting) == (1, 1):
                break
            time.sleep(0.1)
        # A free place in the batch, but no room in its KV budget: the second waits.
        assert (running, waiting) == (1, 1)
        first.cancel()
        assert next(second).HasField("delta")  # it joined once the first left
    finally:
        first.cancel()
        second.cancel()
    reader.join(30)
    for rid in rids:  # both left the batch (and were counted) before the next test
        assert wait_for_event(llm_service, "generation_finished", rid)["finish_reason"] == "cancelled"


def _drain(call, started: threading.Event) -> None:
    try:
        for _ in call:
            started.set()
    except grpc.RpcError:
        pass


def test_the_model_state_rides_on_every_reply(llm_service):
    with grpc.insecure_channel(llm_service.address) as channel:
        _, call = health_pb2_grpc.HealthStub(channel).Check.with_call(
            health_pb2.HealthCheckRequest(service=llm_service.service_name), timeout=5
        )
    trailing = dict(call.trailing_metadata())
    assert trailing["x-aiworker-model-state"] == "loaded"
    assert trailing["x-aiworker-device"] == "cpu"
    assert metric(llm_service, "aiworker_model_loaded") == 1
