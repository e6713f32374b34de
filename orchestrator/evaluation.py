"""Prompts and result parsing of the LLM stages, and the similarity of an
answer to a resume. Pure functions: the tasks do the calls."""

from __future__ import annotations

import re

import numpy as np

_SCORE = re.compile(r"score\s*[:=]?\s*(\d{1,2})(?:\s*/\s*10)?", re.IGNORECASE)
_ANY_NUMBER = re.compile(r"\b(\d{1,2})\s*/\s*10\b|\b(10|[1-9])\b")
_FEEDBACK = re.compile(r"feedback\s*[:=]\s*(.+)", re.IGNORECASE | re.DOTALL)


def evaluation_messages(question: str, answer: str, resume_excerpts: list[str]) -> list[dict[str, str]]:
    context = "\n".join(f"- {t}" for t in resume_excerpts) or "- (no resume given)"
    return [
        {"role": "system", "content": "You are a strict interview coach. Reply in exactly two lines:\n"
                                      "Score: <1-10>\nFeedback: <one or two sentences>"},
        {"role": "user", "content": f"Interview question: {question or 'Tell me about your experience.'}\n"
                                    f"Candidate's resume excerpts:\n{context}\n"
                                    f"Candidate's answer: {answer}\n"
                                    "Rate the answer from 1 to 10 and give feedback."},
    ]


def parse_evaluation(text: str) -> tuple[int | None, str]:
    """Score (1–10, None when the model gave none) and the feedback text."""
    score = None
    match = _SCORE.search(text) or _ANY_NUMBER.search(text)
    if match:
        value = int(next(g for g in match.groups() if g))
        score = min(max(value, 1), 10)
    feedback_match = _FEEDBACK.search(text)
    feedback = (feedback_match.group(1) if feedback_match else _SCORE.sub("", text)).strip()
    return score, " ".join(feedback.split())


def follow_up_messages(question: str, answer: str, resume_excerpts: list[str]) -> list[dict[str, str]]:
    context = "\n".join(f"- {t}" for t in resume_excerpts) or "- (no resume given)"
    return [
        {"role": "system", "content": "You are an interviewer. Ask exactly one short follow-up question "
                                      "that digs deeper into the candidate's answer. Reply with the question only."},
        {"role": "user", "content": f"Previous question: {question or 'Tell me about your experience.'}\n"
                                    f"Resume excerpts:\n{context}\n"
                                    f"Candidate's answer: {answer}"},
    ]


def extract_question(text: str) -> str:
    """The first sentence ending in '?', else the first line."""
    text = " ".join(text.split())
    match = re.search(r"[^?.!]*\?", text)
    return (match.group(0) if match else text.split(". ")[0]).strip()


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
