"""The graded answers cover the range the scoring tests need, and each grade is
its rubric's."""

from __future__ import annotations

from collections import Counter

import pytest

from bench.eval.answers import ANSWERS, BY_ID, Rubric
from bench.eval.audio import wav_seconds
from bench.eval.speech import room_noise


def test_at_least_fourteen_answers_with_unique_ids():
    assert len(ANSWERS) >= 14
    assert len(BY_ID) == len(ANSWERS)


def test_every_band_is_covered():
    bands = Counter(answer.band for answer in ANSWERS)
    assert bands["strong"] >= 3 and bands["average"] >= 3 and bands["weak"] >= 3 and bands["off-topic"] >= 3
    assert {answer.grade for answer in ANSWERS} >= {1, 3, 4, 5, 6, 7, 9, 10}


def test_silent_and_very_short_answers_are_there():
    assert any(not answer.text for answer in ANSWERS)
    assert any(0 < len(answer.text.split()) <= 4 for answer in ANSWERS)


def test_two_or_more_resumes_and_questions_per_resume():
    by_resume = Counter(answer.resume for answer in ANSWERS)
    assert len(by_resume) >= 2 and all(count >= 3 for count in by_resume.values())


def test_grade_follows_the_rubric():
    assert Rubric(3, 3, 2, 2).grade == 10
    assert Rubric(2, 1, 1, 0).grade == 4
    assert Rubric(0, 3, 2, 2).grade == 1  # fluent, but an answer to another question
    assert Rubric(1, 0, 0, 0).grade == 1
    with pytest.raises(ValueError, match="grounding is 3; the rubric scores it 0-2"):
        Rubric(3, 3, 3, 2)


def test_off_topic_answers_grade_at_most_two():
    for answer in ANSWERS:
        if answer.rubric.relevance == 0:
            assert answer.grade <= 2, answer.id


def test_silence_is_quiet_noise_of_a_fixed_length():
    audio = room_noise()
    assert audio == room_noise()
    assert wav_seconds(audio) == pytest.approx(4.0)
