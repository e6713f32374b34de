"""Pure logic of the stages: cleaning, chunking, parsing LLM output, similarity, backoff."""

import numpy as np
import pytest

from orchestrator.domain.evaluation import (
    cosine_similarities,
    extract_question,
    fallback_question,
    follows_up,
    tidy_feedback,
)
from orchestrator.domain.text import chunk_pages, clean_text
from orchestrator.pipelines.stage import backoff_seconds


def test_clean_text_normalises_space_controls_and_unicode():
    raw = "  Hello\u00a0\u00a0world\x00!\r\n\r\n\r\n\r\nSecond\tline  \n"
    assert clean_text(raw) == "Hello world!\n\nSecond line"
    assert clean_text("e\u0301") == "\u00e9"  # NFC
    assert clean_text("\ufeffzero\u200bwidth\u2060 soft\u00adhyphen") == "zerowidth softhyphen"
    assert clean_text("\U0001f469\u200d\U0001f4bb") == "\U0001f469\u200d\U0001f4bb"  # ZWJ emoji kept whole


def test_chunks_respect_size_keep_order_and_overlap():
    sentences = [f"Sentence number {i} talks about Celery and gRPC." for i in range(40)]
    chunks = chunk_pages([(1, " ".join(sentences[:20])), (2, " ".join(sentences[20:]))], size=200, overlap=60)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert all(len(c.text) <= 200 for c in chunks)
    assert {c.page for c in chunks} == {1, 2}
    joined = " ".join(c.text for c in chunks)
    assert all(s in joined for s in sentences)  # nothing lost
    page1 = [c for c in chunks if c.page == 1]
    assert page1[1].text.split(". ")[0] in page1[0].text  # neighbours share context


def test_a_sentence_longer_than_a_chunk_is_cut():
    chunks = chunk_pages([(1, "x" * 1000)], size=300, overlap=0)
    assert [len(c.text) for c in chunks] == [300, 300, 300, 100]


def test_empty_pages_give_no_chunks():
    assert chunk_pages([(1, "  \n "), (2, "")], size=100, overlap=10) == []


@pytest.mark.parametrize(
    ("text", "question"),
    [
        ("Great. How did you measure the failure rate? Also...", "How did you measure the failure rate?"),
        (
            'What a great question! Here\'s a possible follow-up question:\n\n"And what was the process you used?"\n',
            "And what was the process you used?",
        ),
        ("What a great question to ask. Here is one: How did you test the retries?", "How did you test the retries?"),
        (
            "Why? What is your plan to improve the efficiency of this pipeline?",
            "What is your plan to improve the efficiency of this pipeline?",
        ),
        ("Tell me more about Redis.", None),
    ],
)
def test_extract_question(text, question):
    assert extract_question(text) == question


@pytest.mark.parametrize(
    ("answer", "question"),
    [
        (
            "In my last project I designed a pipeline with Celery and Redis, and it worked.",
            "You mentioned Celery and Redis: what was the hardest problem you solved with them, "
            "and how did you know it worked?",
        ),
        (
            "In my last project, we moved our nightly jobs to a queue.",
            "Could you walk me through how you moved your nightly jobs to a queue, and what came of it?",
        ),
        (
            "hmm, not sure.",
            "Could you walk me through a concrete example of that, with what you did and what came of it?",
        ),
    ],
)
def test_fallback_question_asks_about_what_the_answer_named_or_did(answer, question):
    assert fallback_question(answer) == question


def test_cosine_similarities():
    vectors = np.array([[1, 0], [0, 2], [1, 1]], dtype=np.float32)
    got = cosine_similarities(np.array([2, 0], dtype=np.float32), vectors)
    np.testing.assert_allclose(got, [1, 0, 2**-0.5], atol=1e-6)
    assert cosine_similarities(np.ones(2), np.zeros((0, 2))).size == 0


def test_backoff_grows_is_capped_and_jittered():
    draws = [backoff_seconds(n, 1.0, 8.0) for n in range(6) for _ in range(50)]
    assert all(0.5 <= d <= 8.0 for d in draws)
    first = [backoff_seconds(0, 1.0, 8.0) for _ in range(50)]
    assert all(0.5 <= d <= 1.0 for d in first)
    assert all(4.0 <= backoff_seconds(10, 1.0, 8.0) <= 8.0 for _ in range(50))
    assert len({round(d, 6) for d in draws}) > 100  # jitter: not the same delays every time


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("What is your name?", False),
        ("How did you size the Celery retries?", True),
        ("Which pipeline stage failed most often?", True),  # "pipeline" is in the question asked
        ("Why do you want this job?", False),
    ],
)
def test_a_follow_up_must_be_about_the_answer(question, expected):
    answer = "I built a data pipeline with Celery and Redis, and cut failures with retries."
    assert follows_up(question, answer, asked="Tell me about a pipeline you built.") is expected


@pytest.mark.parametrize(
    ("text", "feedback"),
    [
        (
            "The answer was strong on Celery. It lacked figures. It also could have said more and",
            "The answer was strong on Celery. It lacked figures.",
        ),
        ("  Good   use of numbers, but no outcome  ", "Good use of numbers, but no outcome"),
        ("In my previous interview, I demonstrated my ability to design a pipeline.", None),  # as the candidate
        ("I am proud of my work.", None),
        ("Ok.", None),
        ("", None),
    ],
)
def test_tidy_feedback_keeps_two_sentences_of_feedback_and_nothing_else(text, feedback):
    assert tidy_feedback(text) == feedback
