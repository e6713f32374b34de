"""Interview scoring through the whole pipeline, as a smoke test: five graded answers
of one candidate (strong, average, weak, off-topic, silent), spoken, through the
resume and interview_answer pipelines on the session's services and workers. The
evaluation over all 27 answers (Spearman against the grades) is `make eval`
(bench/eval/interview.py), which runs the same `score`."""

from __future__ import annotations

import pytest

from bench.eval.answers import BY_ID
from bench.eval.interview import problems, score

SMOKE = (
    "backend-embeddings-strong",
    "backend-pipeline-average",
    "backend-services-weak",
    "backend-embeddings-off-topic",
    "backend-pipeline-silent",
)
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def scored(stack, interview_speech):
    return score(stack, [BY_ID[i] for i in SMOKE], interview_speech)


def test_every_answer_gets_a_score_breakdown_and_follow_up_and_off_topic_ranks_below_strong(scored):
    assert set(scored) == set(SMOKE)
    assert problems(scored, min_spearman=None) == []
    assert not scored["backend-pipeline-silent"].transcript


def test_the_problems_check_can_fail(scored):
    """An off-topic answer scored as high as a strong one is named a problem."""
    swapped = dict(scored)
    strong, poor = scored["backend-embeddings-strong"], scored["backend-embeddings-off-topic"]
    swapped[poor.id] = type(poor)(**{**poor.__dict__, "score": strong.score})
    assert any("off-topic" in p for p in problems(swapped, min_spearman=None))
