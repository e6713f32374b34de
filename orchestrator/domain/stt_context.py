"""Context for recognising a spoken interview answer: the question asked and the
distinctive terms of the candidate's resume (technology names, proper nouns,
acronyms, numbers with units: orchestrator.domain.terms), which Whisper otherwise
mishears ("celery and radinet" for "Celery and Redis"). Pure functions: the
task does the call."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from orchestrator.domain.terms import distinctive_terms, word_set

MAX_PROMPT_CHARS = 600  # within svc-stt's default limit (1000), ~150 of the 223 tokens Whisper reads
MAX_TERMS = 24  # most distinctive first: the rest are dropped
_ASKED = 'The interviewer asked: "{}"'


@dataclass(frozen=True)
class SttContext:
    """`prompt` for SttClient.recognize; `terms`: the resume's terms in it."""

    prompt: str
    terms: tuple[str, ...]


def build_stt_context(
    question: str, resume_chunks: Sequence[str], max_chars: int = MAX_PROMPT_CHARS, max_terms: int = MAX_TERMS
) -> SttContext:
    """`The interviewer asked: "<question>" Terms: <term>, <term>.` within
    `max_chars`: a question longer than half of it is cut at a word when there
    are terms, then the least distinctive terms are dropped until it fits. An
    empty part is left out ("" when both are).

    The question is quoted and attributed on purpose: given bare, Whisper tiny.en
    echoed it ("How do you develop your services?" three times) for an answer
    that began with the question's own words."""
    question = " ".join(question.replace('"', "'").split())
    asked = word_set(question.lower())
    terms = [t for t in distinctive_terms(resume_chunks, max_terms) if not word_set(t.lower()) <= asked]
    question = _cut(question, max_chars // 2 if terms else max_chars - len(_ASKED.format("")))
    while terms and len(_prompt(question, terms)) > max_chars:
        terms.pop()
    prompt = _prompt(question, terms)
    return SttContext(prompt=prompt if len(prompt) <= max_chars else "", terms=tuple(terms) if prompt else ())


def _prompt(question: str, terms: Sequence[str]) -> str:
    parts = [_ASKED.format(question)] if question else []
    if terms:
        parts.append(f"Terms: {', '.join(terms)}.")
    return " ".join(parts)


def _cut(text: str, max_chars: int) -> str:
    """`text` cut at a word to at most `max_chars` ("" when no word fits)."""
    if len(text) <= max_chars:
        return text
    head = text[: max(max_chars, 0) + 1]
    return (head.rsplit(" ", 1)[0] if " " in head else "").rstrip(" ,;:")
