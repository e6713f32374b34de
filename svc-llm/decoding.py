"""Pieces of the decode loop that know no model: the next-token choice and the
token → text stream that holds back what a stop string might still claim."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch


def next_token(logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator | None) -> int:
    """Greedy when temperature is 0, else temperature + nucleus (top_p) sampling."""
    if temperature == 0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if 0 < top_p < 1:
        sorted_probs, order = torch.sort(probs, descending=True)
        # Keep the smallest prefix whose mass reaches top_p (the top token always stays).
        outside = torch.cumsum(sorted_probs, dim=-1) - sorted_probs >= top_p
        sorted_probs[outside] = 0
        probs = torch.zeros_like(probs).scatter_(-1, order, sorted_probs)
    return int(torch.multinomial(probs, 1, generator=generator))


class TextStream:
    """Token ids in, text deltas out.

    Decoding uses a sliding window (as TGI does): a delta is released only once
    the window decodes to more text than its prefix and does not end in a
    half-made character (U+FFFD). On top of that, any tail that could be the
    start of a stop string is held back; when a stop string appears the text
    ends right before it and the stop string itself is never sent."""

    def __init__(self, decode: Callable[[list[int]], str], stops: Sequence[str] = ()) -> None:
        self._decode = decode
        self._stops = [s for s in stops if s]
        self._longest_stop = max((len(s) for s in self._stops), default=0)
        self._ids: list[int] = []
        self._prefix_offset = 0
        self._read_offset = 0
        self.text = ""  # all text decoded so far (it may extend past a stop string)
        self._sent = 0  # characters of `text` already released
        self.stopped = False

    def push(self, token_id: int) -> str:
        """The text that may be sent after this token ("" while held back)."""
        if self.stopped:
            return ""
        self._ids.append(token_id)
        return self._append(self._decode_window())

    def flush(self) -> str:
        """What is left once generation ends: held-back text, and bytes of a
        character the model never finished (sent as U+FFFD rather than lost)."""
        if self.stopped:
            return ""
        prefix = self._decode(self._ids[self._prefix_offset : self._read_offset])
        rest = self._decode(self._ids[self._prefix_offset :])[len(prefix) :]
        self._prefix_offset = self._read_offset = len(self._ids)
        delta = self._append(rest)
        return delta if self.stopped else delta + self._release(len(self.text))

    def _decode_window(self) -> str:
        prefix = self._decode(self._ids[self._prefix_offset : self._read_offset])
        window = self._decode(self._ids[self._prefix_offset :])
        if len(window) > len(prefix) and not window.endswith("\ufffd"):
            self._prefix_offset = self._read_offset
            self._read_offset = len(self._ids)
            return window[len(prefix) :]
        return ""

    def _append(self, new: str) -> str:
        if not new:
            return ""
        searched_from = max(0, len(self.text) - self._longest_stop + 1)
        self.text += new
        if not self._stops:
            return self._release(len(self.text))
        cut = self._find_stop(searched_from)
        if cut is not None:
            self.stopped = True
            return self._release(cut)
        return self._release(len(self.text) - self._held_tail())

    def _find_stop(self, start: int) -> int | None:
        hits = [i for i in (self.text.find(stop, start) for stop in self._stops) if i >= 0]
        return min(hits) if hits else None

    def _held_tail(self) -> int:
        """Length of the longest tail of `text` that begins some stop string."""
        for length in range(min(self._longest_stop - 1, len(self.text)), 0, -1):
            tail = self.text[-length:]
            if any(stop.startswith(tail) for stop in self._stops):
                return length
        return 0

    def _release(self, end: int) -> str:
        end = max(end, self._sent)
        delta = self.text[self._sent : end]
        self._sent = end
        return delta
