"""ChoiceProbabilities on the session's service (bundled SmolLM2-135M): the
probabilities agree with what greedy generation writes, cover several-token
choices, refuse bad input, and do not disturb generations running in the batch."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from aiworker.llm.v1 import llm_pb2
from tests.llm.support import generate, request

PROMPT = "What is two plus three? Reply with the digit only."


def choices_request(choices: list[str], prompt: str = PROMPT) -> llm_pb2.ChoiceProbabilitiesRequest:
    return llm_pb2.ChoiceProbabilitiesRequest(
        messages=[llm_pb2.ChatMessage(role="user", content=prompt)], choices=choices
    )


def test_the_greedy_first_token_is_the_most_likely_choice(llm_stub):
    first = generate(llm_stub, request(PROMPT, max_new_tokens=1)).text
    assert first
    others = [c for c in ("1", "2", "3", "4", "5", "6", "7", "8", "9") if c != first]
    reply = llm_stub.ChoiceProbabilities(choices_request([first, *others]), timeout=60)
    probabilities = list(reply.probabilities)
    assert len(probabilities) == 1 + len(others) and reply.model and reply.prompt_tokens > 5
    assert all(0 <= p <= 1 for p in probabilities) and sum(probabilities) <= 1 + 1e-6
    assert probabilities[0] == max(probabilities) > 0  # greedy writes the most likely token


def test_a_choice_of_several_tokens_is_the_product_of_its_tokens(llm_stub):
    words = generate(llm_stub, request(PROMPT, max_new_tokens=4)).text
    first = generate(llm_stub, request(PROMPT, max_new_tokens=1)).text
    assert words.startswith(first) and len(words) > len(first)
    one, whole = llm_stub.ChoiceProbabilities(choices_request([first, words]), timeout=60).probabilities
    assert 0 < whole <= one  # the whole greedy continuation: its first token, times the rest


@pytest.mark.parametrize(
    ("choices", "message"),
    [
        ([], "0 choices"),
        (["1", "1"], "choices repeat"),
        (["1", ""], "choices[1] is 0 characters"),
        (["x" * 65], "choices[0] is 65 characters"),
    ],
)
def test_bad_choices_are_invalid_argument(llm_stub, choices, message):
    with pytest.raises(grpc.RpcError) as err:
        llm_stub.ChoiceProbabilities(choices_request(choices), timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and message in err.value.details()


def test_asked_while_a_batch_runs_it_changes_no_generation(llm_stub):
    long = request("Describe your experience building backend services in Python.", max_new_tokens=40)
    alone = generate(llm_stub, long).text
    expected = llm_stub.ChoiceProbabilities(choices_request(["5", "6"]), timeout=60).probabilities
    with ThreadPoolExecutor(2) as pool:
        running = pool.submit(generate, llm_stub, long, 300)
        during = [llm_stub.ChoiceProbabilities(choices_request(["5", "6"]), timeout=60).probabilities for _ in range(3)]
        assert running.result().text == alone
    for probabilities in during:
        assert probabilities == pytest.approx(expected, rel=1e-4)
