"""The interview score's arithmetic (orchestrator.domain.scoring): pure functions, no services.
The score's quality on spoken answers through the whole pipeline is
tests/interview/test_scoring_pipeline.py."""

from __future__ import annotations

import pytest

from orchestrator.domain.scoring import (
    OFF_TOPIC_CAP,
    WEIGHTS,
    Evidence,
    LlmJudgement,
    feedback_from_signals,
    gather_evidence,
    judgement_from,
    score_answer,
)

RESUME = ["Built a document pipeline on Celery and Redis that processes 40,000 PDFs a day."]
STRONG = (
    "I built the document pipeline on Celery and Redis; it handles 40,000 PDFs a day, and retries cut "
    "the failure rate from 3% to 0.1%."
)


def test_evidence_names_the_concrete_things_said():
    evidence = gather_evidence(STRONG, 0.5, 0.7, RESUME)
    assert {"Celery", "Redis", "PDFs"} <= set(evidence.terms)
    assert {"Celery", "Redis"} <= set(evidence.resume_terms_used)
    assert "40,000" in evidence.numbers and any(o.startswith("from 3%") for o in evidence.outcomes)
    assert evidence.hedges == []
    vague = gather_evidence("I think we used some things, maybe a database, I guess.", 0.5, 0.3, RESUME)
    assert len(vague.hedges) >= 3 and vague.terms == []


def test_a_concrete_grounded_answer_outscores_a_vague_one():
    strong = score_answer(gather_evidence(STRONG, 0.5, 0.7, RESUME), LlmJudgement({"4": 1.0}))
    vague = score_answer(
        gather_evidence("I think we used some things, maybe a database, I guess.", 0.5, 0.3, RESUME),
        LlmJudgement({"4": 1.0}),
    )
    assert 1 <= vague.score < strong.score <= 10
    assert strong.signals["specificity"] > vague.signals["specificity"]
    assert strong.signals["clarity"] == 1.0 > vague.signals["clarity"]


def test_silence_scores_one_without_a_judgement():
    result = score_answer(gather_evidence("", None, None, RESUME), None)
    assert result.score == 1.0 and result.silent and not result.off_topic


def test_an_off_topic_answer_is_capped_whatever_else_it_has():
    judged_best = LlmJudgement({"5": 1.0})
    result = score_answer(gather_evidence(STRONG, 0.05, 0.08, RESUME), judged_best)
    assert result.off_topic and result.score == OFF_TOPIC_CAP


def test_signals_that_cannot_be_measured_are_left_out_and_the_weights_rescaled():
    evidence = Evidence(words=40, question_similarity=0.5, resume_similarity=None, terms=["Celery"])
    result = score_answer(evidence, None)
    assert result.signals["grounding"] is None and result.signals["llm"] is None
    assert set(result.weights) == set(WEIGHTS) - {"grounding", "llm"}
    assert sum(result.weights.values()) == pytest.approx(1.0, abs=1e-3)


def test_the_llm_judgement_is_the_probability_weighted_rating():
    judgement = judgement_from({"1": 0.1, "3": 0.3, "5": 0.6, "Yes": 0.5})  # other tokens ignored
    assert judgement is not None and judgement.expected == pytest.approx(0.1 * 1 + 0.3 * 3 + 0.6 * 5)
    assert judgement_from({"A": 1.0}) is None
    base = Evidence(words=40, question_similarity=0.5, resume_similarity=0.5)
    assert score_answer(base, LlmJudgement({"5": 1.0})).score > score_answer(base, LlmJudgement({"1": 1.0})).score


def test_feedback_from_the_signals_says_what_was_strong_and_what_was_missing():
    strong = score_answer(gather_evidence(STRONG, 0.5, 0.7, RESUME), LlmJudgement({"4": 1.0}))
    said = feedback_from_signals(strong)
    assert said.startswith("Strong: it answers the question asked; it names concrete tools") and "resume" in said
    assert "Missing" not in said and "Could have more" not in said
    middling = score_answer(gather_evidence("I built a pipeline with Celery for documents.", 0.5, 0.5, RESUME), None)
    assert "Could have more: a link to the experience in the resume" in feedback_from_signals(middling)
    vague = score_answer(
        gather_evidence("I think we used some things, maybe a database, I guess.", 0.5, 0.3, RESUME), None
    )
    said = feedback_from_signals(vague)
    assert "Missing: concrete tools, figures or outcomes" in said and "confidence (it hedges)" in said
    assert feedback_from_signals(score_answer(gather_evidence("", None, None), None)).startswith("No speech")
