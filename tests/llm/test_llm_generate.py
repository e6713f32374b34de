"""Generate and GenerateStream over a real channel, with the bundled model,
under greedy decoding (temperature 0) unless a test says otherwise."""

from __future__ import annotations

from aiworker.llm.v1 import llm_pb2
from tests.llm.support import LONG_PROMPT, generate, request, stream

MAX_NEW = 24


def test_stream_deltas_join_to_the_unary_text(llm_stub):
    req = request(max_new_tokens=MAX_NEW, temperature=0.0)
    unary = generate(llm_stub, req)
    deltas, done = stream(llm_stub, req)

    assert unary.text.strip(), "the model wrote nothing"
    assert len(deltas) > 1, "the reply came in one piece, not as a stream"
    assert "".join(deltas) == unary.text
    assert done.finish_reason == unary.finish_reason
    assert done.finish_reason in (llm_pb2.FINISH_REASON_EOS, llm_pb2.FINISH_REASON_LENGTH)
    assert done.usage == unary.usage
    assert 0 < unary.usage.completion_tokens <= MAX_NEW
    if unary.finish_reason == llm_pb2.FINISH_REASON_LENGTH:
        assert unary.usage.completion_tokens == MAX_NEW
    # The chat template wraps the prompt, so it is longer than its words.
    assert unary.usage.prompt_tokens > len(req.messages[0].content.split())
    status = llm_stub.ModelStatus(llm_pb2.ModelStatusRequest(), timeout=10)
    assert unary.model == done.model == status.model != ""
    # Greedy decoding is deterministic.
    assert generate(llm_stub, req).text == unary.text


def test_max_new_tokens_ends_with_length(llm_stub):
    reply = generate(llm_stub, request(LONG_PROMPT, max_new_tokens=6))
    assert reply.finish_reason == llm_pb2.FINISH_REASON_LENGTH
    assert reply.usage.completion_tokens == 6
    assert reply.text


def test_stop_sequence_ends_the_text_right_before_it(llm_stub):
    base = generate(llm_stub, request(LONG_PROMPT, max_new_tokens=MAX_NEW)).text
    assert len(base) > 12, base
    stop = base[len(base) // 2 : len(base) // 2 + 3]
    expected = base[: base.find(stop)]

    req = request(LONG_PROMPT, max_new_tokens=MAX_NEW, stop=["never-produced-marker", stop])
    reply = generate(llm_stub, req)
    assert reply.finish_reason == llm_pb2.FINISH_REASON_STOP_SEQUENCE
    assert reply.text == expected
    assert stop not in reply.text
    deltas, done = stream(llm_stub, req)
    assert "".join(deltas) == expected
    assert done.finish_reason == llm_pb2.FINISH_REASON_STOP_SEQUENCE
    assert done.usage == reply.usage
    assert reply.usage.completion_tokens < MAX_NEW


def test_a_stop_sequence_that_never_appears_changes_nothing(llm_stub):
    # Text held back because it might begin a stop string ("Once upon" could
    # begin "Once upon a midnight") is released when generation ends.
    plain = generate(llm_stub, request(LONG_PROMPT, max_new_tokens=12))
    guarded = generate(
        llm_stub, request(LONG_PROMPT, max_new_tokens=12, stop=["zzqx", plain.text[-2:] + "\u2603never"])
    )
    assert guarded.text == plain.text
    assert guarded.finish_reason == plain.finish_reason


def test_seeded_sampling_is_reproducible(llm_stub):
    req = request(max_new_tokens=12, temperature=0.9, top_p=0.9, seed=1234)
    first, second = generate(llm_stub, req), generate(llm_stub, req)
    assert first.text and first.text == second.text
    assert first.usage == second.usage
