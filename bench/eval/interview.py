"""Interview scoring, evaluated: each graded answer (answers.py) spoken by
espeak-ng, its candidate's resume submitted as a PDF through the resume
pipeline, then the interview_answer pipeline (speech recognition with context →
evaluation → follow-up question) on real services and workers. The scores must
rank the answers as the grades do (Spearman ≥ 0.6), every off-topic or silent
answer must score below every strong one, and no score may be missing.

    .venv/bin/python -m bench.eval.interview      (make eval; minutes on 2 cores)

Prints the table and writes bench/results/eval_interview.json; exit 1 when a
target is missed. tests/interview/test_scoring_pipeline.py runs `score` on a few
answers as a smoke test."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from scipy.stats import spearmanr

from aiworker_local.stack import Stack
from bench.common import report
from bench.eval.answers import ANSWERS, HELD_OUT, Answer
from svc_parser.model import sample_pdf

MIN_SPEARMAN = 0.6
SIGNALS = {"relevance", "specificity", "grounding", "substance", "clarity", "llm"}


@dataclass
class Scored:
    id: str
    grade: int
    band: str
    held_out: bool
    score: float
    transcript: str
    signals: dict
    notes: list
    follow_up_question: str


def score(stack: Stack, answers: Sequence[Answer], speech: dict[str, bytes]) -> dict[str, Scored]:
    """Each answer through the interview_answer pipeline, after its resume through the resume
    pipeline; every stage must succeed."""
    resumes = {}
    for text in sorted({a.resume for a in answers}):
        submitted = stack.submit("resume", {"pdf": stack.put_blob(sample_pdf([text])), "filename": "cv.pdf"})
        results = stack.wait(submitted, timeout=180)
        if [r.state for r in results] != ["SUCCESS"] * 3:
            raise AssertionError(f"resume pipeline: {[r.result for r in results]}")
        resumes[text] = submitted.pipeline_id
    submitted = {
        answer.id: stack.submit(
            "interview_answer",
            {
                "audio": stack.put_blob(speech[answer.id]),
                "resume_id": resumes[answer.resume],
                "question": answer.question,
            },
        )
        for answer in answers
    }
    held_out = {a.id for a in HELD_OUT}
    out = {}
    for answer in answers:
        results = stack.wait(submitted[answer.id], timeout=600)
        if [r.state for r in results] != ["SUCCESS"] * 3:
            raise AssertionError(f"{answer.id}: {[r.result for r in results]}")
        evaluation = results[1].result["evaluation"]
        out[answer.id] = Scored(
            id=answer.id,
            grade=answer.grade,
            band=answer.band,
            held_out=answer.id in held_out,
            score=evaluation["score"],
            transcript=results[1].result["transcript"],
            signals=evaluation["breakdown"]["signals"],
            notes=evaluation["notes"],
            follow_up_question=results[2].result["follow_up_question"],
        )
    return out


def problems(scored: dict[str, Scored], min_spearman: float | None = MIN_SPEARMAN) -> list[str]:
    """What misses a target: a score out of range or without its breakdown, a follow-up that is
    no question, an off-topic answer at or above a strong one, and (when given) a low Spearman."""
    found = []
    for r in scored.values():
        if not 1 <= r.score <= 10 or not SIGNALS <= set(r.signals) or not r.notes:
            found.append(f"{r.id}: score {r.score}, signals {sorted(r.signals)}, notes {r.notes}")
        if not r.follow_up_question.endswith("?"):
            found.append(f"{r.id}: follow-up {r.follow_up_question!r} is no question")
    strong = [r for r in scored.values() if r.band == "strong"]
    poor = [r for r in scored.values() if r.band == "off-topic"]
    if strong and poor and max(r.score for r in poor) >= min(r.score for r in strong):
        found.append(
            f"off-topic {[(r.id, r.score) for r in poor]} not below strong {[(r.id, r.score) for r in strong]}"
        )
    if min_spearman is not None and spearman(scored.values()) < min_spearman:
        found.append(f"Spearman {spearman(scored.values()):.3f} < {min_spearman}")
    return found


def spearman(rows) -> float:
    rows = list(rows)
    return float(spearmanr([r.grade for r in rows], [r.score for r in rows]).statistic)


def main() -> int:
    from bench.eval.speech import all_answer_audio
    from bench.eval.system import WORKDIR, running_stack

    speech = all_answer_audio(WORKDIR / "speech")
    with running_stack() as stack:
        scored = score(stack, ANSWERS, speech)
    rows = list(scored.values())
    held = [r for r in rows if r.held_out]
    missed = problems(scored)
    report(
        "eval_interview",
        ["answer", "grade", "score", "held out", "transcript"],
        [[r.id, r.grade, r.score, r.held_out, r.transcript[:60]] for r in rows],
        {
            "spearman": spearman(rows),
            "spearman_held_out": spearman(held),
            "target_min_spearman": MIN_SPEARMAN,
            "missed": missed,
            "answers": [asdict(r) for r in rows],
        },
    )
    print(
        f"Spearman {spearman(rows):.3f} over {len(rows)} answers ({spearman(held):.3f} over the held-out {len(held)})"
    )
    for line in missed:
        print(f"MISSED: {line}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
