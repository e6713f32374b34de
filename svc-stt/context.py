"""A request's speech context (a prompt and hotwords that steer recognition
towards the words the speaker is likely to use), checked against the limits.
Knows nothing of gRPC: raises InvalidArgument saying what is wrong."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from svc_runtime.errors import InvalidArgument


@dataclass(frozen=True)
class ContextLimits:
    max_prompt_chars: int
    max_hotwords: int
    max_hotwords_chars: int  # of all hotwords together


@dataclass(frozen=True)
class SpeechContext:
    prompt: str = ""
    hotwords: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.prompt or self.hotwords)

    def transcribe_options(self) -> dict[str, str]:
        """faster-whisper's names for it; hotwords go in as one string."""
        options = {}
        if self.prompt:
            options["initial_prompt"] = self.prompt
        if self.hotwords:
            options["hotwords"] = " ".join(self.hotwords)
        return options


def check_context(prompt: str, hotwords: Sequence[str], limits: ContextLimits) -> SpeechContext:
    """The context within the limits (whitespace-only = none), or InvalidArgument."""
    prompt = prompt.strip()
    if len(prompt) > limits.max_prompt_chars:
        raise InvalidArgument(
            f"context.prompt is {len(prompt)} characters; at most {limits.max_prompt_chars} are accepted"
        )
    if len(hotwords) > limits.max_hotwords:
        raise InvalidArgument(
            f"context.hotwords has {len(hotwords)} entries; at most {limits.max_hotwords} are accepted"
        )
    words = tuple(" ".join(word.split()) for word in hotwords)
    for index, word in enumerate(words):
        if not word:
            raise InvalidArgument(f"context.hotwords[{index}] is empty")
    total = len(" ".join(words))
    if total > limits.max_hotwords_chars:
        raise InvalidArgument(
            f"context.hotwords are {total} characters together; at most {limits.max_hotwords_chars} are accepted"
        )
    return SpeechContext(prompt, words)
