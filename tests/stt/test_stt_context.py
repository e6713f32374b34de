"""Recognition with context, through the real svc-stt and SttClient, as a smoke test:
a few graded spoken answers transcribed without and with the context
orchestrator.domain.stt_context builds. The evaluation over all 27 answers (word
error rates, resume terms heard) is `make eval` (bench/eval/stt_context.py), which
runs the same `measure`."""

from __future__ import annotations

import grpc
import pytest

from bench.eval.answers import BY_ID
from bench.eval.stt_context import answer_problems, measure, recognize
from orchestrator.clients import SttClient

SMOKE = ("backend-embeddings-strong", "ml-training-strong", "backend-services-very-short", "backend-pipeline-silent")


@pytest.fixture(scope="module")
def client(stt_service):
    channel = grpc.insecure_channel(stt_service.address)
    yield SttClient(channel)
    channel.close()


@pytest.fixture(scope="module")
def measured(client, interview_speech):
    return measure(client, [BY_ID[i] for i in SMOKE], interview_speech)


def test_context_is_used_when_given_makes_no_answer_much_worse_and_adds_no_words_to_silence(measured):
    assert answer_problems(measured) == []


def test_the_resume_terms_are_heard_at_least_as_well_with_the_context(measured):
    said = sum(len(m.terms) for m in measured.values())
    assert said > 0
    assert sum(m.terms_heard_with for m in measured.values()) >= sum(m.terms_heard_without for m in measured.values())


def test_hotwords_alone_are_context_too(client, interview_speech):
    answer = BY_ID["backend-embeddings-strong"]
    reply = recognize(client, interview_speech[answer.id], hotwords=("PostgreSQL", "pgvector"))
    assert reply.context_used
    assert "pgvector" in reply.text, reply.text
