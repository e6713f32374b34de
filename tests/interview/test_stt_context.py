"""orchestrator.domain.stt_context: the terms a resume's shape gives away, and a prompt
within its bound."""

from __future__ import annotations

import pytest

from bench.eval.answers import ANSWERS, BACKEND_RESUME, DATA_RESUME, ML_RESUME, PIPELINE_Q
from orchestrator.domain.stt_context import MAX_PROMPT_CHARS, build_stt_context
from orchestrator.domain.terms import distinctive_terms


def test_the_issues_answer_gets_its_terms():
    context = build_stt_context(PIPELINE_Q, [BACKEND_RESUME])
    assert context.prompt.startswith(f'The interviewer asked: "{PIPELINE_Q}" Terms: ')
    for term in ("Celery", "Redis", "PostgreSQL", "pgvector", "Kubernetes", "gRPC", "Lumen Health"):
        assert term in context.terms
        assert term in context.prompt
    assert len(context.prompt) <= MAX_PROMPT_CHARS


@pytest.mark.parametrize(
    ("text", "term"),
    [
        ("We moved to PostgreSQL last year.", "PostgreSQL"),  # inner capitals
        ("Services talk over gRPC now.", "gRPC"),
        ("Everything runs on AWS today.", "AWS"),  # acronym
        ("We bought more GPUs for training.", "GPUs"),  # and its plural
        ("Trained on an A100 for a week.", "A100"),  # letters with digits
        ("Wrote the engine in C++ for speed.", "C++"),  # symbols
        ("Vectors live in pgvector there.", "pgvector"),  # no English word starts with pg
        ("Models are tested with dbt daily.", "dbt"),  # no vowel
        ("The queue is built on Celery and Redis.", "Celery"),  # a name inside a sentence
        ("I worked at Lumen Health for years.", "Lumen Health"),  # a run of names is one
        ("It handled 40,000 requests and cut latency to 120 milliseconds.", "120 milliseconds"),
        ("Uptime stayed at 99.9% all year.", "99.9%"),
    ],
)
def test_terms_found_by_their_shape(text, term):
    assert term in distinctive_terms([text])


def test_ordinary_english_is_no_term():
    text = "Designed and built a system that processes documents every day. Led a team of five people."
    assert distinctive_terms([text]) == []


def test_the_fillers_of_speech_are_no_term():
    assert distinctive_terms(["Hmm, well, uh, I think, hmm. Yeah, okay, mhm, erm."]) == []


def test_deduplicated_and_ranked_most_distinctive_then_most_frequent():
    texts = ["Deployed with Helm on Kubernetes.", "Kubernetes again, and kubernetes.", "Then AWS.", "Streams data."]
    terms = distinctive_terms(texts)
    assert terms == ["AWS", "Kubernetes", "Helm", "Streams"]  # shape 3; names 2 (the most said first); 1


def test_a_word_of_a_better_term_is_not_repeated():
    terms = distinctive_terms(["Processes 40,000 PDFs a day; PDFs are stored on NVIDIA Triton and Triton is fast."])
    assert terms.count("PDFs") == 1 and "40,000 PDFs" not in terms
    assert "NVIDIA Triton" in terms and "Triton" not in terms


def test_terms_the_question_says_are_left_out():
    context = build_stt_context("How do you get events from Kafka into your warehouse?", [DATA_RESUME])
    assert "Kafka" not in context.terms and "ClickHouse" in context.terms


def test_limit_on_the_number_of_terms():
    assert len(build_stt_context(PIPELINE_Q, [BACKEND_RESUME, DATA_RESUME, ML_RESUME], max_terms=5).terms) == 5


@pytest.mark.parametrize("max_chars", [0, 10, 40, 80, 150, 300, 600, 1000])
def test_prompt_stays_within_its_bound(max_chars):
    for answer in ANSWERS:
        long_question = answer.question + " " + "and why exactly " * 50
        for question in (answer.question, long_question, ""):
            context = build_stt_context(question, [answer.resume, DATA_RESUME, ML_RESUME], max_chars=max_chars)
            assert len(context.prompt) <= max_chars
            assert all(term in context.prompt for term in context.terms)


def test_the_least_distinctive_terms_go_first_and_a_long_question_is_cut_at_a_word():
    full = build_stt_context(PIPELINE_Q, [BACKEND_RESUME])
    short = build_stt_context(PIPELINE_Q, [BACKEND_RESUME], max_chars=140)
    assert short.terms == full.terms[: len(short.terms)] and 0 < len(short.terms) < len(full.terms)
    long = build_stt_context("Tell me " + "about that time " * 40 + "please.", [BACKEND_RESUME], max_chars=200)
    question = long.prompt.split('"')[1]
    assert question.startswith("Tell me about that time") and len(question) <= 100  # half the bound
    assert ("Tell me " + "about that time " * 40).startswith(question + " ")  # cut at a word
    assert long.terms


def test_empty_parts_are_left_out():
    assert build_stt_context("", [BACKEND_RESUME]).prompt.startswith("Terms: PDFs, PostgreSQL")
    assert build_stt_context(PIPELINE_Q, []).prompt == f'The interviewer asked: "{PIPELINE_Q}"'
    assert build_stt_context("  ", ["plain words only here"]).prompt == ""


def test_quotes_in_the_question_do_not_break_the_prompt():
    context = build_stt_context('What does "done" mean to you?', [])
    assert context.prompt == "The interviewer asked: \"What does 'done' mean to you?\""
