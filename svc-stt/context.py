"""A request's speech context (a prompt and hotwords that steer recognition
towards the words the speaker is likely to use), checked against the limits.
Knows nothing of gRPC: raises InvalidArgument saying what is wrong."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from svc_runtime.errors import InvalidArgument
from svc_stt.settings import SttSettings


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


def check_context(prompt: str, hotwords: Sequence[str], settings: SttSettings) -> SpeechContext:
    """The context within the limits (whitespace-only = none), or InvalidArgument."""
    prompt = prompt.strip()
    if len(prompt) > settings.max_prompt_chars:
        raise InvalidArgument(
            f"context.prompt is {len(prompt)} characters; at most {settings.max_prompt_chars} are accepted"
        )
    if len(hotwords) > settings.max_hotwords:
        raise InvalidArgument(
            f"context.hotwords has {len(hotwords)} entries; at most {settings.max_hotwords} are accepted"
        )
    words = tuple(" ".join(word.split()) for word in hotwords)
    for index, word in enumerate(words):
        if not word:
            raise InvalidArgument(f"context.hotwords[{index}] is empty")
    total = len(" ".join(words))
    if total > settings.max_hotwords_chars:
        raise InvalidArgument(
            f"context.hotwords are {total} characters together; at most {settings.max_hotwords_chars} are accepted"
        )
    return SpeechContext(prompt, words)
