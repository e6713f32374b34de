"""Prompts and result parsing of the LLM stages, and the similarity of an
answer to a resume. Pure functions: the tasks do the calls (the interview
score itself is orchestrator.domain.scoring's)."""

from __future__ import annotations

import re

import numpy as np

from orchestrator.domain.terms import concrete_terms

# The prompts are shaped for small instruction models (the bundled SmolLM2-135M
# answers a single user turn with a stated reply format far more reliably than
# a system prompt); larger models follow them just as well.


def feedback_messages(question: str, answer: str, resume_excerpts: list[str]) -> list[dict[str, str]]:
    """Feedback in words (the score is orchestrator.domain.scoring's, not parsed from this)."""
    resume = f"\nResume: {' '.join(resume_excerpts)[:600]}" if resume_excerpts else ""
    return [
        {
            "role": "user",
            "content": "Give the candidate feedback on this interview answer in two sentences: what was "
            "strong, and what was missing.\n"
            f"Question: {question or 'Tell me about your experience.'}\n"
            f"Answer: {answer}{resume}",
        }
    ]


FEEDBACK_SENTENCES = 2  # as feedback_messages asks
_SENTENCE = re.compile(r"[^.!?]*[.!?]")
# A small model sometimes answers in the candidate's voice ("In my last project, I ...") instead of
# giving feedback: that is no feedback.
_AS_THE_CANDIDATE = re.compile(r"^\W*(?:I|I'm|I've|My|In my|As a|We|Our)\b")


def tidy_feedback(text: str) -> str | None:
    """The model's feedback, cut to its first FEEDBACK_SENTENCES whole sentences; None when it
    wrote none, or wrote as the candidate."""
    text = " ".join(text.split())
    sentences = [m.group(0).strip() for m in _SENTENCE.finditer(text)][:FEEDBACK_SENTENCES]
    kept = " ".join(s for s in sentences if s) or text
    if len(kept.split()) < 3 or _AS_THE_CANDIDATE.match(kept):
        return None
    return kept


def follow_up_messages(question: str, answer: str, resume_excerpts: list[str]) -> list[dict[str, str]]:
    resume = f"\nTheir resume says: {' '.join(resume_excerpts)[:600]}" if resume_excerpts else ""
    asked = f"Question asked: {question}\n" if question else ""
    return [
        {
            "role": "user",
            "content": f'{asked}A candidate said: "{answer}"{resume}\n'
            "Write one follow-up interview question about it. The question must end with a question mark.",
        }
    ]


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


_FIRST_PERSON_CLAUSE = re.compile(r"\b(?:I|we)\s+([a-z][^,.;!?]*)")
_YOURS = {"my": "your", "our": "your", "me": "you", "us": "you", "i": "you", "we": "you"}


def fallback_question(answer: str) -> str:
    """A plain follow-up grounded in the answer, for when the model asked none: about
    the tools or names it mentioned, else about the first thing the candidate says
    they did, else an open one."""
    terms = concrete_terms(answer)[:2]
    if terms:
        them = "them" if len(terms) > 1 else "it"
        return (
            f"You mentioned {' and '.join(terms)}: what was the hardest problem you solved with {them}, "
            "and how did you know it worked?"
        )
    did = _FIRST_PERSON_CLAUSE.search(answer)
    if did:
        deed = " ".join(_YOURS.get(w.lower(), w) for w in did.group(1).split())
        return f"Could you walk me through how you {deed}, and what came of it?"
    return "Could you walk me through a concrete example of that, with what you did and what came of it?"


_CONTENT_WORD = re.compile(r"[A-Za-z][A-Za-z0-9+#-]{4,}")  # five letters or more: skips "what", "your", "name"


def follows_up(question: str, answer: str, asked: str = "") -> bool:
    """Whether a follow-up question is about the answer (or the question asked): it shares a
    content word with them. "What is your name?" follows up nothing."""
    said = {w.lower() for w in _CONTENT_WORD.findall(f"{answer} {asked}")}
    return any(w.lower() in said for w in _CONTENT_WORD.findall(question))


def repeat_question(question: str) -> str:
    """The follow-up to a silent answer: the question again, or an open one."""
    asked = question.strip().rstrip(".!?")
    if asked:
        return f"We did not hear an answer. Could you come back to this: {asked[:1].lower() + asked[1:]}?"
    return "We did not hear an answer. Could you tell me about a recent project of yours?"


def cosine_similarities(query: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    if vectors.size == 0:
        return np.zeros(0, dtype=np.float32)
    q = query / (np.linalg.norm(query) or 1.0)
    v = vectors / np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)
    return v @ q


def summary_messages(text: str, instruction: str, context: list[str] | None = None) -> list[dict[str, str]]:
    """`context`: related passages (retrieved from the stored documents) the model may draw on."""
    background = (
        "\n\nRelated passages from stored documents:\n" + "\n".join(f"- {c[:400]}" for c in context) if context else ""
    )
    return [
        {"role": "system", "content": "You are a concise assistant."},
        {"role": "user", "content": f"{instruction}\n\n{text}{background}"},
    ]
