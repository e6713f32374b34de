"""Interview scoring through the whole pipeline: each graded answer (answers.py)
spoken by espeak-ng, its candidate's resume submitted as a PDF through the resume
pipeline, then the interview_answer pipeline (speech recognition with context →
evaluation → follow-up question) on the session's real services and workers.
The scores must rank the answers as the grades do (Spearman ≥ 0.6), every
off-topic or silent answer below every strong one, and no score may be missing.
The table is printed (-s) and written to test-artifacts/interview-scores.json."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import pytest
from scipy.stats import spearmanr

from bench.eval.answers import ANSWERS, HELD_OUT
from svc_parser.model import sample_pdf

MIN_SPEARMAN = 0.6
# 27 answers, each recognised, scored and followed up by the real models: minutes on 2 cores.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


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


@pytest.fixture(scope="module")
def scored(stack, interview_speech, artifacts_dir) -> dict[str, Scored]:
    resumes = {}
    for text in sorted({a.resume for a in ANSWERS}):
        submitted = stack.submit("resume", {"pdf": stack.put_blob(sample_pdf([text])), "filename": "cv.pdf"})
        results = stack.wait(submitted, timeout=180)
        assert [r.state for r in results] == ["SUCCESS"] * 3, [r.result for r in results]
        resumes[text] = submitted.pipeline_id
    submitted = {
        answer.id: stack.submit(
            "interview_answer",
            {
                "audio": stack.put_blob(interview_speech[answer.id]),
                "resume_id": resumes[answer.resume],
                "question": answer.question,
            },
        )
        for answer in ANSWERS
    }
    held_out = {a.id for a in HELD_OUT}
    out = {}
    for answer in ANSWERS:
        results = stack.wait(submitted[answer.id], timeout=600)
        assert [r.state for r in results] == ["SUCCESS"] * 3, (answer.id, [r.result for r in results])
        evaluated = results[1].result
        evaluation = evaluated["evaluation"]
        assert results[2].result["follow_up_question"].endswith("?")
        out[answer.id] = Scored(
            id=answer.id,
            grade=answer.grade,
            band=answer.band,
            held_out=answer.id in held_out,
            score=evaluation["score"],
            transcript=evaluated["transcript"],
            signals=evaluation["breakdown"]["signals"],
            notes=evaluation["notes"],
        )
    rows = list(out.values())
    correlation = spearmanr([r.grade for r in rows], [r.score for r in rows]).statistic
    held = [r for r in rows if r.held_out]
    held_correlation = spearmanr([r.grade for r in held], [r.score for r in held]).statistic
    (artifacts_dir / "interview-scores.json").write_text(
        json.dumps(
            {"spearman": correlation, "spearman_held_out": held_correlation, "answers": [asdict(r) for r in rows]},
            indent=2,
        )
    )
    print(
        f"\nSpearman {correlation:.3f} over {len(rows)} answers ({held_correlation:.3f} over the held-out {len(held)})"
    )
    for r in rows:
        print(f"{r.grade:>3} {r.score:>5} {'held-out' if r.held_out else '':8} {r.id}")
    return out


def test_every_answer_gets_a_score_with_its_breakdown(scored):
    for result in scored.values():
        assert 1 <= result.score <= 10, result
        assert set(result.signals) >= {"relevance", "specificity", "grounding", "substance", "clarity", "llm"}
        assert result.notes


def test_the_scores_rank_the_answers_as_the_grades_do(scored):
    rows = list(scored.values())
    correlation = spearmanr([r.grade for r in rows], [r.score for r in rows]).statistic
    assert correlation >= MIN_SPEARMAN, [(r.id, r.grade, r.score) for r in rows]


def test_every_off_topic_or_silent_answer_scores_below_every_strong_one(scored):
    strong = [r for r in scored.values() if r.band == "strong"]
    poor = [r for r in scored.values() if r.band == "off-topic"]
    assert strong and poor and any(not r.transcript for r in poor)
    assert max(r.score for r in poor) < min(r.score for r in strong), (
        [(r.id, r.score) for r in poor],
        [(r.id, r.score) for r in strong],
    )
