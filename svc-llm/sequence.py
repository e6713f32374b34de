"""One generation inside the batch: its prompt, sampling state, KV cache, text
stream, and the events it sends to its caller (text deltas, then an end or an
error). The scheduler drives it; it knows no other sequence."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

import torch

from svc_llm.decoding import TextStream, next_token
from svc_llm.ragged import SequenceKV


class FinishReason(StrEnum):
    EOS = "eos"
    LENGTH = "length"
    STOP_SEQUENCE = "stop_sequence"
    INTERRUPTED = "interrupted"  # should_stop() said so (client gone, deadline passed)


@dataclass
class GenerationParams:
    max_new_tokens: int = 0  # 0 = the service default
    temperature: float = 0.0  # 0 = greedy
    top_p: float = 0.0  # 0 = 1.0 (no nucleus filtering)
    stop: Sequence[str] = ()
    seed: int | None = None


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class GenerationEnd:
    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int  # tokens the model produced, the one that ended the turn included
    max_new_tokens: int
    first_token_seconds: float | None  # from joining the batch (queueing excluded), prefill included
    decode_seconds: float  # from joining the batch to the end
    queue_seconds: float = 0.0  # waiting for a place in the batch


@dataclass(frozen=True)
class GenerationError:
    """The generation failed (e.g. the model could not load); the caller raises `error`."""

    error: BaseException


Event = TextDelta | GenerationEnd | GenerationError


class GenerationSequence:
    def __init__(
        self,
        prompt_ids: torch.Tensor,
        params: GenerationParams,
        max_new_tokens: int,
        should_stop: Callable[[], bool],
        emit: Callable[[Event], None],
        decode: Callable[[list[int]], str],
        eos_ids: frozenset[int],
        device: str,
    ) -> None:
        self.prompt_ids = prompt_ids  # [1, prompt_tokens]
        self.prompt_tokens = int(prompt_ids.shape[1])
        self.max_new_tokens = max_new_tokens
        self.reserved_tokens = self.prompt_tokens + max_new_tokens  # its share of the batch token budget
        self.temperature = params.temperature
        self.top_p = params.top_p or 1.0
        self.should_stop = should_stop
        self._emit = emit
        self._eos_ids = eos_ids
        self._stream = TextStream(decode, params.stop)
        self._generator = _generator(params, device)
        self.kv: SequenceKV | None = None
        self.last_token = -1
        self.produced = 0
        self.enqueued = time.perf_counter()
        self.admitted: float | None = None
        self._first_token_seconds: float | None = None

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def admit(self, kv: SequenceKV) -> None:
        self.kv = kv
        self.admitted = time.perf_counter()

    def choose(self, logits: torch.Tensor) -> int:
        """The next token from this sequence's logits row (sampled with its own generator)."""
        return next_token(logits, self.temperature, self.top_p, self._generator)

    def accept(self, token: int) -> FinishReason | None:
        """Takes the token the model produced; sends the text it releases; says
        whether the generation ends with it."""
        self.produced += 1
        self.last_token = token
        if self._first_token_seconds is None and self.admitted is not None:
            self._first_token_seconds = time.perf_counter() - self.admitted
        if token in self._eos_ids:
            return FinishReason.EOS
        delta = self._stream.push(token)
        if delta:
            self._emit(TextDelta(delta))
        if self._stream.stopped:
            return FinishReason.STOP_SEQUENCE
        if self.produced >= self.max_new_tokens:
            return FinishReason.LENGTH
        return None

    def end(self, reason: FinishReason) -> GenerationEnd:
        """Frees its cache, sends what text is left and the end."""
        self.kv = None
        if reason in (FinishReason.EOS, FinishReason.LENGTH):
            tail = self._stream.flush()
            if tail:
                self._emit(TextDelta(tail))
        now = time.perf_counter()
        admitted = self.admitted if self.admitted is not None else now
        end = GenerationEnd(
            reason,
            self.prompt_tokens,
            self.produced,
            self.max_new_tokens,
            self._first_token_seconds,
            now - admitted,
            admitted - self.enqueued,
        )
        self._emit(end)
        return end

    def fail(self, error: BaseException) -> None:
        self.kv = None
        self._emit(GenerationError(error))


def _generator(params: GenerationParams, device: str) -> torch.Generator | None:
    if params.temperature == 0:
        return None
    seed = params.seed if params.seed is not None else random.SystemRandom().getrandbits(63)
    return torch.Generator(device=device).manual_seed(seed)
