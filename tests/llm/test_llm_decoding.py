"""The token → text stream and the sampler, on byte-level tokens (each id is
one UTF-8 byte), as byte-level BPE tokenizers decode."""

from __future__ import annotations

import torch

from svc_llm.decoding import TextStream, next_token


def byte_decode(ids: list[int]) -> str:
    return bytes(ids).decode("utf-8", errors="replace")


def run(text: str, stops: list[str]) -> tuple[list[str], TextStream]:
    stream = TextStream(byte_decode, stops)
    deltas = []
    for byte in text.encode():
        deltas.append(stream.push(byte))
        if stream.stopped:
            break
    deltas.append(stream.flush())
    return [d for d in deltas if d], stream


def test_without_stops_every_token_is_released_and_joins_to_the_text():
    deltas, stream = run("Hello, 세계!", [])
    assert "".join(deltas) == "Hello, 세계!"
    assert "\ufffd" not in "".join(deltas)  # half-made characters are held, not sent
    assert not stream.stopped


def test_the_text_ends_right_before_the_stop_string():
    deltas, stream = run("one two STOP three", ["STOP"])
    assert "".join(deltas) == "one two "
    assert stream.stopped


def test_a_partial_match_is_held_then_released():
    deltas, stream = run("a STO b ST", ["STOP"])
    assert "".join(deltas) == "a STO b ST"
    assert not stream.stopped
    # "ST" at the end was held until flush.
    assert deltas[-1].endswith("ST")


def test_the_earliest_of_several_stops_wins():
    deltas, _ = run("xx <end> yy </s>", ["</s>", "<end>"])
    assert "".join(deltas) == "xx "


def test_a_stop_made_of_multibyte_characters():
    deltas, stream = run("답변: 끝. 다음", ["끝."])
    assert "".join(deltas) == "답변: "
    assert stream.stopped


def test_an_unfinished_character_is_flushed_not_lost():
    stream = TextStream(byte_decode)
    pushed = [stream.push(b) for b in b"ok " + "가".encode()[:2]]
    assert "".join(pushed) == "ok "
    assert stream.flush() == "\ufffd"


def test_greedy_picks_the_largest_logit_and_top_p_keeps_the_head():
    logits = torch.tensor([0.1, 3.0, 0.2, 2.9])
    assert next_token(logits, 0.0, 1.0, None) == 1
    generator = torch.Generator().manual_seed(0)
    # Token 1 alone holds more than 1% of the mass: top_p=0.01 always keeps only it.
    assert {next_token(logits, 1.0, 0.01, generator) for _ in range(50)} == {1}
    picks = {next_token(logits, 1.0, 1.0, generator) for _ in range(200)}
    assert {1, 3} <= picks
