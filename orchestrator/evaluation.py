"""Prompts and result parsing of the LLM stages, and the similarity of an
answer to a resume. Pure functions: the tasks do the calls."""

from __future__ import annotations

import re

import numpy as np

_SCORE = re.compile(r"score\s*[:=]?\s*(\d{1,2})(?:\s*/\s*10)?", re.IGNORECASE)
_OUT_OF_TEN = re.compile(r"\b(\d{1,2})\s*(?:/|out of)\s*10\b", re.IGNORECASE)
_FEEDBACK = re.compile(r"feedback\s*[:=]\s*(.+)", re.IGNORECASE | re.DOTALL)


# The prompts are shaped for small instruction models (the bundled SmolLM2-135M
# answers a single user turn with a stated reply format far more reliably than
# a system prompt); larger models follow them just as well.

def evaluation_messages(question: str, answer: str, resume_excerpts: list[str]) -> list[dict[str, str]]:
    resume = f"\nResume: {' '.join(resume_excerpts)[:600]}" if resume_excerpts else ""
    return [{"role": "user", "content":
             "Rate this interview answer from 1 to 10 and explain why in one sentence.\n"
             f"Question: {question or 'Tell me about your experience.'}\n"
             f"Answer: {answer}{resume}\n"
             "Reply as:\nScore: N/10\nFeedback: ..."}]


def parse_evaluation(text: str) -> tuple[int | None, str]:
    """Score (1–10, None when the model gave none) and the feedback text."""
    score = None
    match = _SCORE.search(text) or _OUT_OF_TEN.search(text)
    if match:
        value = int(next(g for g in match.groups() if g))
        score = min(max(value, 1), 10)
    feedback_match = _FEEDBACK.search(text)
    feedback = (feedback_match.group(1) if feedback_match else _SCORE.sub("", text)).strip()
    return score, " ".join(feedback.split())


def follow_up_messages(question: str, answer: str, resume_excerpts: list[str]) -> list[dict[str, str]]:
    resume = f"\nTheir resume says: {' '.join(resume_excerpts)[:600]}" if resume_excerpts else ""
    asked = f"Question asked: {question}\n" if question else ""
    return [{"role": "user", "content":
             f"{asked}A candidate said: \"{answer}\"{resume}\n"
             "Write one follow-up interview question about it. The question must end with a question mark."}]


_QUOTED_QUESTION = re.compile(r"[\"“]([^\"”]{8,}?\?)[\"”]")
_QUESTION_SENTENCE = re.compile(r"[^.!?:\n\"“”]*\?")


def extract_question(text: str) -> str | None:
    """The model's question: a quoted one first (models like to announce it:
    'Here is a follow-up question: "..."'), else the first sentence ending in
    '?' with at least three words; None when there is none."""
    quoted = _QUOTED_QUESTION.search(text)
    if quoted:
        return " ".join(quoted.group(1).split())
    for sentence in _QUESTION_SENTENCE.findall(text):
        sentence = " ".join(sentence.split()).strip("'\" ")
        if len(sentence.split()) >= 3:
            return sentence
    return None


def fallback_question(answer: str) -> str:
    """A plain follow-up grounded in the answer, for when the model asked none."""
    clause = re.split(r"[,.;!?]", answer.strip(), maxsplit=1)[0].strip()
    clause = clause[:1].lower() + clause[1:] if clause else "that"
    return f"Could you walk me through the details of how {clause}?"


def cosine_similarities(query: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    if vectors.size == 0:
        return np.zeros(0, dtype=np.float32)
    q = query / (np.linalg.norm(query) or 1.0)
    v = vectors / np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)
    return v @ q


def summary_messages(text: str, instruction: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": "You are a concise assistant."},
        {"role": "user", "content": f"{instruction}\n\n{text}"},
    ]
