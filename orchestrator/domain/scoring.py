"""The interview answer's score (1–10): measurable signals of the answer, and the
LLM's judgement read as probabilities rather than parsed from its text (G-Eval).
Pure functions: the task makes the calls (embeddings, the LLM) and passes their
results in. The rubric, with the weights below, is in docs/models.md ("Interview
scoring").

    relevance    the answer is about the question (or, failing that, the resume's subject):
                 cosine similarity of their embeddings; below OFF_TOPIC the answer is off-topic
                 and scores at most OFF_TOPIC_CAP whatever else it has
    specificity  concrete things: named tools and technologies, numbers, outcomes
                 ("from five hours to 40 minutes", "cut", "p99")
    grounding    the candidate's own resume shows through: its terms in the answer, and how
                 close the answer is to the nearest resume passage
    substance    enough said to judge: words, up to SUBSTANTIAL_WORDS
    clarity      no hedging ("I think", "not sure", "some things")
    llm          the LLM's expected rating: Σ p(k)·k over the ratings 1–5 it could write next

A signal that cannot be measured (no resume: grounding; no LLM judgement) is left
out and the others' weights scaled up. Silence (no words) scores 1."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from orchestrator.domain.terms import concrete_terms, distinctive_terms

WEIGHTS = {
    "relevance": 0.25,
    "specificity": 0.30,
    "grounding": 0.20,
    "substance": 0.10,
    "clarity": 0.05,
    "llm": 0.10,
}
OFF_TOPIC = 0.15  # relevance similarity below this: another subject
OFF_TOPIC_CAP = 2.0
# Cosine similarities (all-MiniLM-L6-v2) mapped onto 0–1: an answer on the subject sits well above
# the floor, one on another subject below OFF_TOPIC.
RELEVANCE_FLOOR, RELEVANCE_FULL = 0.10, 0.45
RESUME_FLOOR, RESUME_FULL = 0.20, 0.65
CONCRETE_FULL = 7  # terms + numbers + outcomes for full specificity
SHARED_TERMS_FULL = 3
SUBSTANTIAL_WORDS = 35
SHORTEST_WORDS = 5
HEDGES_FOR_ZERO = 3
RATINGS = ("1", "2", "3", "4", "5")

_NUMBER = re.compile(r"\b\d[\d,.]*%?")
_NUMBER_WORDS = frozenset(
    "two three four five six seven eight nine ten eleven twelve fifteen twenty thirty forty fifty sixty "
    "seventy eighty ninety hundred hundreds thousand thousands million millions billion billions half "
    "double twice triple".split()
)
_OUTCOME = re.compile(
    r"\b(?:from\b[^.;]{1,40}?\bto\b|cut|cuts|reduc\w*|fell|dropped|improv\w*|faster|quicker|increas\w*|"
    r"decreas\w*|saved|sav(?:es|ing)|under \d|within \w+ \w+|p9\d|latency|throughput|per second|a second|"
    r"a day|an hour|recall|accuracy)\b",
    re.IGNORECASE,
)
_HEDGE = re.compile(
    r"\b(?:i think|i guess|i suppose|not (?:really )?sure|i don't know|something|some things|things|stuff|"
    r"kind of|sort of|maybe|probably|mostly|a little|a bit|okay|well,)",
    re.IGNORECASE,
)
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'.+#-]*")


@dataclass(frozen=True)
class Evidence:
    """What the answer shows, measured."""

    words: int
    question_similarity: float | None  # cosine, answer vs question (None: no question)
    resume_similarity: float | None  # cosine, answer vs its nearest resume passage (None: no resume)
    terms: list[str] = field(default_factory=list)  # named tools, technologies, names
    numbers: list[str] = field(default_factory=list)
    outcomes: list[str] = field(default_factory=list)
    hedges: list[str] = field(default_factory=list)
    resume_terms_used: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LlmJudgement:
    """The LLM's probabilities of writing each rating next (1–5), and the mean they give."""

    probabilities: dict[str, float]

    @property
    def expected(self) -> float:
        total = sum(self.probabilities.values()) or 1.0
        return sum(int(k) * p for k, p in self.probabilities.items()) / total


@dataclass(frozen=True)
class Score:
    score: float  # 1–10, one decimal
    signals: dict[str, float | None]  # each 0–1; None: not measurable here
    weights: dict[str, float]  # as applied (scaled to the signals there were)
    off_topic: bool
    silent: bool

    def as_dict(self) -> dict[str, object]:
        return {
            "score": self.score,
            "signals": self.signals,
            "weights": self.weights,
            "off_topic": self.off_topic,
            "silent": self.silent,
        }


def gather_evidence(
    answer: str,
    question_similarity: float | None,
    resume_similarity: float | None,
    resume_texts: Sequence[str] = (),
) -> Evidence:
    words = _WORD.findall(answer)
    terms = concrete_terms(answer)
    numbers = _NUMBER.findall(answer) + [w for w in words if w.lower() in _NUMBER_WORDS]
    resume_terms = distinctive_terms(resume_texts, limit=200) if resume_texts else []
    resume_words = {w.lower() for t in resume_terms for w in t.split() if not w[0].isdigit()}
    used = [t for t in terms if t.lower() in {r.lower() for r in resume_terms} or resume_words & set(t.lower().split())]
    return Evidence(
        words=len(words),
        question_similarity=question_similarity,
        resume_similarity=resume_similarity,
        terms=terms,
        numbers=numbers,
        outcomes=[m.group(0) for m in _OUTCOME.finditer(answer)],
        hedges=[m.group(0) for m in _HEDGE.finditer(answer)],
        resume_terms_used=used,
    )


def score_answer(evidence: Evidence, judgement: LlmJudgement | None) -> Score:
    if evidence.words == 0:
        signals: dict[str, float | None] = dict.fromkeys(WEIGHTS, 0.0)
        return Score(1.0, signals, dict(WEIGHTS), off_topic=False, silent=True)
    similarities = [s for s in (evidence.question_similarity, evidence.resume_similarity) if s is not None]
    on_subject = max(similarities) if similarities else None
    signals = {
        "relevance": _scale(on_subject, RELEVANCE_FLOOR, RELEVANCE_FULL) if on_subject is not None else None,
        "specificity": _clip((len(evidence.terms) + len(evidence.numbers) + len(evidence.outcomes)) / CONCRETE_FULL),
        "grounding": _grounding(evidence),
        "substance": _scale(evidence.words, SHORTEST_WORDS, SUBSTANTIAL_WORDS),
        "clarity": 1.0 - _clip(len(evidence.hedges) / HEDGES_FOR_ZERO),
        "llm": (judgement.expected - 1.0) / 4.0 if judgement is not None else None,
    }
    weights = _applied_weights(signals)
    total = sum(weights[name] * value for name, value in signals.items() if value is not None)
    score = 1.0 + 9.0 * total
    off_topic = on_subject is not None and on_subject < OFF_TOPIC
    if off_topic:
        score = min(score, OFF_TOPIC_CAP)
    rounded = {name: (round(value, 3) if value is not None else None) for name, value in signals.items()}
    return Score(round(score, 1), rounded, weights, off_topic=off_topic, silent=False)


# How each signal reads in feedback: (when it is strong, when it is lacking).
_SIGNAL_WORDS = {
    "relevance": ("it answers the question asked", "an answer to the question asked"),
    "specificity": ("it names concrete tools, figures or outcomes", "concrete tools, figures or outcomes"),
    "grounding": ("it draws on the experience in the resume", "a link to the experience in the resume"),
    "substance": ("it gives enough detail", "detail"),
    "clarity": ("it is said without hedging", "confidence (it hedges)"),
}
STRONG_SIGNAL, WEAK_SIGNAL = 0.7, 0.4


def feedback_from_signals(result: Score) -> str:
    """Feedback in words from the measured signals, for when the model wrote none: what was
    strong, what was missing, what could have been more."""
    if result.silent:
        return "No speech was recognised in the recording: nothing was answered."
    measured = {name: value for name, value in result.signals.items() if name in _SIGNAL_WORDS and value is not None}
    strong = [_SIGNAL_WORDS[name][0] for name, value in measured.items() if value >= STRONG_SIGNAL]
    missing = [_SIGNAL_WORDS[name][1] for name, value in measured.items() if value <= WEAK_SIGNAL]
    more = [_SIGNAL_WORDS[name][1] for name, value in measured.items() if WEAK_SIGNAL < value < STRONG_SIGNAL]
    said = [f"Strong: {'; '.join(strong)}." if strong else "Nothing in the answer stood out as strong."]
    if missing:
        said.append(f"Missing: {'; '.join(missing)}.")
    if more:
        said.append(f"Could have more: {'; '.join(more)}.")
    if not missing and not more:
        said.append("Nothing measurable was missing.")
    return " ".join(said)


def notes(result: Score, evidence: Evidence) -> list[str]:
    """The breakdown in words, for the candidate's reviewer."""
    if result.silent:
        return ["no speech was recognised in the recording"]
    out = []
    if result.off_topic:
        out.append(f"off-topic: the answer is not about the question (score capped at {OFF_TOPIC_CAP:g})")
    if evidence.terms:
        out.append("names " + ", ".join(evidence.terms[:8]))
    measured = evidence.numbers + evidence.outcomes
    out.append("gives figures or outcomes: " + ", ".join(measured[:6]) if measured else "no figures or outcomes")
    if evidence.resume_similarity is not None:
        used = evidence.resume_terms_used
        out.append("draws on the resume: " + ", ".join(used[:6]) if used else "nothing from the resume")
    if evidence.hedges:
        out.append("hedges: " + ", ".join(f'"{h}"' for h in evidence.hedges[:5]))
    if evidence.words < SHORTEST_WORDS * 2:
        out.append(f"very short ({evidence.words} words)")
    return out


def judgement_from(probabilities: Mapping[str, float]) -> LlmJudgement | None:
    """The judgement from the LLM's choice probabilities (None when it put no weight on any rating)."""
    ratings = {k: float(probabilities.get(k, 0.0)) for k in RATINGS}
    return LlmJudgement(ratings) if sum(ratings.values()) > 0 else None


def judgement_messages(question: str, answer: str, resume_excerpts: Sequence[str]) -> list[dict[str, str]]:
    """The G-Eval prompt: criteria, then the rating the model would write next."""
    resume = f"\nThe candidate's resume: {' '.join(resume_excerpts)[:600]}" if resume_excerpts else ""
    return [
        {
            "role": "user",
            "content": "You grade answers in a technical job interview.\n"
            f"Question: {question or 'Tell me about your experience.'}\n"
            f"Answer: {answer}{resume}\n"
            "A good answer addresses the question with concrete tools, decisions and measured results "
            "from the candidate's own work. Rate the answer from 1 (off-topic or empty) to 5 (specific "
            "and complete). Reply with the digit only.",
        }
    ]


def _grounding(evidence: Evidence) -> float | None:
    if evidence.resume_similarity is None:
        return None
    shared = _clip(len(evidence.resume_terms_used) / SHARED_TERMS_FULL)
    return 0.6 * shared + 0.4 * _scale(evidence.resume_similarity, RESUME_FLOOR, RESUME_FULL)


def _applied_weights(signals: Mapping[str, float | None]) -> dict[str, float]:
    present = {name: WEIGHTS[name] for name, value in signals.items() if value is not None}
    total = sum(present.values())
    return {name: round(weight / total, 4) for name, weight in present.items()}


def _scale(value: float, floor: float, full: float) -> float:
    return _clip((value - floor) / (full - floor))


def _clip(value: float) -> float:
    return min(max(value, 0.0), 1.0)
