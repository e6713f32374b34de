"""Text helpers of the pipelines: cleaning and chunking for embedding."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# Invisible characters that carry no meaning in running text (zero-width space,
# word joiner, BOM, soft hyphen); ZWJ/ZWNJ stay, they shape emoji and scripts.
_INVISIBLE = re.compile("[\u200b\u2060\ufeff\u00ad]")
_SPACES = re.compile(r"[ \t\u00a0\u3000]+")
_BLANK_LINES = re.compile(r"\n{3,}")
_SENTENCE_END = re.compile(r"(?<=[.!?。？！])\s+|\n+")


def clean_text(text: str) -> str:
    """NFC, no control or invisible characters, single spaces, at most one blank line."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = _INVISIBLE.sub("", _CONTROL.sub("", text))
    text = "\n".join(_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", text).strip()


@dataclass(frozen=True)
class Chunk:
    index: int
    page: int
    text: str


def chunk_pages(pages: list[tuple[int, str]], size: int, overlap: int) -> list[Chunk]:
    """Splits each page into chunks of about `size` characters on sentence
    boundaries, neighbours sharing up to `overlap` characters of context."""
    chunks: list[Chunk] = []
    for page, text in pages:
        for piece in _split(clean_text(text), size, overlap):
            chunks.append(Chunk(len(chunks), page, piece))
    return chunks


def _split(text: str, size: int, overlap: int) -> list[str]:
    if not text:
        return []
    sentences = [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]
    # A "sentence" longer than a chunk is cut hard.
    units = [s[i : i + size] for s in sentences for i in range(0, len(s), size)]
    pieces: list[str] = []
    current: list[str] = []
    length = 0
    for unit in units:
        if current and length + len(unit) + 1 > size:
            pieces.append(" ".join(current))
            tail: list[str] = []
            kept = 0
            for previous in reversed(current):  # carry the last sentences as overlap
                if kept + len(previous) > overlap:
                    break
                tail.insert(0, previous)
                kept += len(previous) + 1
            current, length = tail, kept
        current.append(unit)
        length += len(unit) + 1
    if current:
        pieces.append(" ".join(current))
    return pieces
