"""Every bad request is INVALID_ARGUMENT with a message that says what is
wrong, on both RPCs, and the service serves the next caller."""

from __future__ import annotations

import grpc
import pytest

from aiworker.llm.v1 import llm_pb2
from tests.llm.support import MAX_BATCH_TOKENS, MAX_NEW_TOKENS_LIMIT, generate, request


def _messages(*pairs: tuple[str, str]) -> list[llm_pb2.ChatMessage]:
    return [llm_pb2.ChatMessage(role=role, content=content) for role, content in pairs]


def _context_length(stub) -> int:
    return stub.ModelStatus(llm_pb2.ModelStatusRequest(), timeout=10).context_length


# Each case builds its request from the model's context length and returns the
# request and the words the error message must contain.
CASES = {
    "no-messages": lambda ctx: (llm_pb2.GenerateRequest(max_new_tokens=4), ["messages is empty"]),
    "unknown-role": lambda ctx: (
        llm_pb2.GenerateRequest(messages=_messages(("user", "hi"), ("robot", "beep")), max_new_tokens=4),
        ["messages[1].role is 'robot'", "system, user, assistant"],
    ),
    "max-new-tokens-over-limit": lambda ctx: (
        request(max_new_tokens=100_000),
        ["max_new_tokens is 100000", f"limit of {MAX_NEW_TOKENS_LIMIT}"],
    ),
    "negative-temperature": lambda ctx: (request(temperature=-0.5), ["temperature is -0.5"]),
    "nan-temperature": lambda ctx: (request(temperature=float("nan")), ["temperature is nan"]),
    "top-p-over-one": lambda ctx: (request(top_p=1.5), ["top_p is 1.5", "[0, 1]"]),
    "negative-top-p": lambda ctx: (request(top_p=-0.25), ["top_p is -0.25"]),
    "empty-stop-string": lambda ctx: (request(stop=["ok", ""]), ["stop[1] is an empty string"]),
    # Each " word" is one token; the chat template adds a few more.
    "prompt-longer-than-context": lambda ctx: (
        request("word" * 1 + " word" * ctx, max_new_tokens=4),
        [f"over the model's context of {ctx} tokens"],
    ),
    "prompt-plus-max-new-tokens-over-context": lambda ctx: (
        request("word" + " word" * (ctx - 1000), max_new_tokens=2000),
        ["max_new_tokens is 2000", f"over the model's context of {ctx} tokens"],
    ),
    # Within the context, but more KV cache than the whole batch may hold.
    "prompt-plus-max-new-tokens-over-batch-budget": lambda ctx: (
        request("word" + " word" * (MAX_BATCH_TOKENS - MAX_NEW_TOKENS_LIMIT), max_new_tokens=MAX_NEW_TOKENS_LIMIT),
        [f"max_new_tokens is {MAX_NEW_TOKENS_LIMIT}", f"over the batch token budget of {MAX_BATCH_TOKENS}"],
    ),
}


@pytest.mark.parametrize("rpc", ["Generate", "GenerateStream"])
@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_invalid_argument_with_a_clear_message(llm_stub, llm_service, case, rpc):
    req, words = CASES[case](_context_length(llm_stub))
    with pytest.raises(grpc.RpcError) as err:
        if rpc == "Generate":
            llm_stub.Generate(req, timeout=30)
        else:
            list(llm_stub.GenerateStream(req, timeout=30))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    for word in words:
        assert word in err.value.details()
    assert llm_service.process.alive()


def test_the_service_serves_the_next_caller_after_bad_input(llm_stub):
    for case in CASES.values():
        req, _ = case(_context_length(llm_stub))
        with pytest.raises(grpc.RpcError):
            llm_stub.Generate(req, timeout=30)
    reply = generate(llm_stub, request(max_new_tokens=3))
    assert reply.usage.completion_tokens > 0 and reply.text
