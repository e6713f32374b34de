"""Interview answer pipeline: stt.recognize (gpu) → evaluator.analyze_answer (gpu)
→ question_generation.generate (gpu); and question_generation.preload_model,
sent when an interview starts so the first follow-up has no load delay."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from aiworker.stt.v1 import stt_pb2
from orchestrator.broker.routing import GPU_QUEUE
from orchestrator.clients import EmbedderClient, LlmClient, SttClient
from orchestrator.domain.evaluation import (
    cosine_similarities,
    extract_question,
    fallback_question,
    feedback_messages,
    follow_up_messages,
    follows_up,
    repeat_question,
    tidy_feedback,
)
from orchestrator.domain.scoring import (
    RATINGS,
    feedback_from_signals,
    gather_evidence,
    judgement_from,
    judgement_messages,
    notes,
    score_answer,
)
from orchestrator.domain.stt_context import build_stt_context
from orchestrator.errors import InvalidInput, RetryableServiceError
from orchestrator.pipelines.declarations import stage_task
from orchestrator.pipelines.stage import ReportPace, StageTask
from orchestrator.storage.db import session_scope
from orchestrator.storage.db.documents import document_exists, load_chunks

TOP_CHUNKS = 3


class AnswerInput(BaseModel):
    audio: str = Field(description="blob reference of the recorded answer")
    language: str = Field("en", max_length=8)
    resume_id: str | None = Field(None, max_length=64, description="compare with this resume (its pipeline id)")
    question: str = Field("", max_length=2000, description="the question that was asked")
    stt_context: bool = Field(
        True, description="steer speech recognition with the question and the resume's distinctive terms"
    )


class Transcript(BaseModel):
    transcript: str
    language: str = ""
    duration_s: float = 0.0
    segments: list[dict[str, Any]] = []
    resume_id: str | None = None
    question: str = ""
    stt_prompt: str = ""  # what steered recognition (the question, the resume's terms)


class Evaluated(Transcript):
    evaluation: dict[str, Any]


@stage_task("tasks.stt.recognize", queue=GPU_QUEUE)
def recognize(self: StageTask, payload: dict[str, Any]) -> dict[str, Any]:
    data = self.validate(AnswerInput, payload)
    audio = self.resources.blobs.get(data.audio)
    prompt = _recognition_prompt(self, data) if data.stt_context else ""
    self.report("PROGRESS", 10, f"transcribing {len(audio)} bytes of audio")
    reply = _recognize_reporting(self, audio, data.language, prompt)
    return Transcript(
        transcript=reply.text.strip(),
        language=reply.language,
        duration_s=round(reply.duration_s, 2),
        segments=[{"start": round(s.start, 2), "end": round(s.end, 2), "text": s.text.strip()} for s in reply.segments],
        resume_id=data.resume_id,
        question=data.question,
        stt_prompt=prompt,
    ).model_dump()


def _recognize_reporting(task: StageTask, audio: bytes, language: str, prompt: str) -> stt_pb2.RecognizeResponse:
    """The transcript, streamed so that the stage's progress follows the audio transcribed
    (10 → 95 % over its duration) rather than jumping when it ends."""
    pace = ReportPace()
    for event in task.resources.client(SttClient).recognize_stream(audio, task.rpc(), language=language, prompt=prompt):
        if isinstance(event, stt_pb2.RecognizeResponse):
            return event
        if pace.due():
            share = min(event.segment.end / max(event.duration_s, 1e-6), 1.0)
            task.report(
                "PROGRESS", int(10 + 85 * share), f"transcribed {event.segment.end:.1f} s of {event.duration_s:.1f} s"
            )
    raise RetryableServiceError("stt: the transcript stream ended without its result")


def _recognition_prompt(task: StageTask, data: AnswerInput) -> str:
    """The question and the resume's distinctive terms (a missing resume: the question alone;
    the evaluation says the resume is missing)."""
    chunks: list[str] = []
    if data.resume_id:
        with session_scope(task.resources.settings.database_url) as session:
            if document_exists(session, data.resume_id):
                chunks, _ = load_chunks(session, data.resume_id)
    return build_stt_context(data.question, chunks).prompt


def _resume_context(task: StageTask, resume_id: str | None, answer: str, question: str = "") -> dict[str, Any]:
    """The resume chunks closest to the answer and how close they are, and how close the
    answer is to the question (one embedding call for both)."""
    texts: list[str] = []
    vectors = np.zeros((0, 0), dtype=np.float32)
    if resume_id:
        with session_scope(task.resources.settings.database_url) as session:
            if not document_exists(session, resume_id):
                raise InvalidInput(f"resume {resume_id!r} not found: run the resume pipeline first")
            texts, vectors = load_chunks(session, resume_id)
    reply = task.resources.client(EmbedderClient).embed([answer, question or answer], task.rpc(), normalize=True)
    answer_vector = np.asarray(reply.vectors[0].values, dtype=np.float32)
    question_vector = np.asarray(reply.vectors[1].values, dtype=np.float32)
    question_similarity = float(answer_vector @ question_vector) if question else None
    scores = cosine_similarities(answer_vector, vectors) if resume_id else np.zeros(0, dtype=np.float32)
    order = np.argsort(-scores)[:TOP_CHUNKS]
    return {
        "resume_id": resume_id,
        "question_similarity": round(question_similarity, 4) if question_similarity is not None else None,
        "similarity_max": round(float(scores.max()), 4) if scores.size else None,
        "similarity_mean": round(float(scores.mean()), 4) if scores.size else None,
        "relevant_chunks": [{"text": texts[i], "similarity": round(float(scores[i]), 4)} for i in order],
        "resume_texts": texts,
    }


@stage_task("tasks.evaluator.analyze_answer", queue=GPU_QUEUE)
def analyze_answer(self: StageTask, transcript: dict[str, Any]) -> dict[str, Any]:
    """The score (1–10, orchestrator.domain.scoring) with its breakdown, and the LLM's feedback."""
    data = self.validate(Transcript, transcript)
    answer = data.transcript.strip()
    if not answer:
        silent = score_answer(gather_evidence("", None, None), None)
        evaluation = {
            "score": silent.score,
            "breakdown": silent.as_dict(),
            "notes": notes(silent, gather_evidence("", None, None)),
            "feedback": feedback_from_signals(silent),
            "feedback_source": "signals",
            "resume_id": data.resume_id,
            "question_similarity": None,
            "similarity_max": None,
            "similarity_mean": None,
            "relevant_chunks": [],
        }
        return Evaluated(**data.model_dump(), evaluation=evaluation).model_dump()
    self.report("PROGRESS", 10, "comparing the answer with the question and the resume")
    context = _resume_context(self, data.resume_id, answer, data.question)
    resume_texts = context.pop("resume_texts")
    excerpts = [c["text"] for c in context["relevant_chunks"]]
    evidence = gather_evidence(
        answer, context["question_similarity"], context["similarity_max"] if data.resume_id else None, resume_texts
    )
    llm = self.resources.client(LlmClient)
    self.report("PROGRESS", 40, "asking the LLM for its rating")
    probabilities = llm.choice_probabilities(judgement_messages(data.question, answer, excerpts), RATINGS, self.rpc())
    judgement = judgement_from(probabilities)
    result = score_answer(evidence, judgement)
    self.report("PROGRESS", 50, "writing feedback")
    reply = self.generate_reporting(
        feedback_messages(data.question, answer, excerpts),
        self.resources.settings.llm_max_new_tokens,
        50,
        99,
        "writing feedback",
    )
    written = tidy_feedback(reply.text)
    return Evaluated(
        **data.model_dump(),
        evaluation={
            "score": result.score,
            "breakdown": result.as_dict(),
            "notes": notes(result, evidence),
            "evidence": asdict(evidence),
            "llm_rating": {
                "probabilities": {k: round(v, 4) for k, v in probabilities.items()},
                "expected": round(judgement.expected, 3) if judgement else None,
            },
            "feedback": written or feedback_from_signals(result),
            "feedback_source": "llm" if written else "signals",
            "llm_output": reply.text,
            **context,
        },
    ).model_dump()


class FollowUpInput(BaseModel):
    transcript: str = Field(description="the candidate's answer; empty when nothing was said")
    question: str = ""
    resume_id: str | None = None
    evaluation: dict[str, Any] = {}


@stage_task("tasks.question_generation.generate", queue=GPU_QUEUE)
def generate(self: StageTask, evaluated: dict[str, Any]) -> dict[str, Any]:
    data = self.validate(FollowUpInput, evaluated)
    if not data.transcript.strip():  # nothing to follow up on: ask again rather than invent
        question = repeat_question(data.question)
        return {**evaluated, "follow_up_question": question, "follow_up_source": "template", "llm_output": ""}
    chunks = data.evaluation.get("relevant_chunks")
    if chunks is None:
        chunks = _resume_context(self, data.resume_id, data.transcript)["relevant_chunks"]  # an older stage's output
    self.report("PROGRESS", 10, "generating a follow-up question")
    reply = self.generate_reporting(
        follow_up_messages(data.question, data.transcript, [c["text"] for c in chunks]),
        self.resources.settings.llm_max_new_tokens,
        10,
        99,
        "generating a follow-up question",
    )
    question = extract_question(reply.text)
    source = "llm"
    if question is None or not follows_up(question, data.transcript, data.question):
        question, source = fallback_question(data.transcript), "template"
    return {**evaluated, "follow_up_question": question, "follow_up_source": source, "llm_output": reply.text}


@stage_task("tasks.question_generation.preload_model", queue=GPU_QUEUE)
def preload_model(self: StageTask, payload: dict[str, Any] | None = None) -> dict[str, Any]:
    self.report("PROGRESS", 10, "loading the LLM")
    reply = self.resources.client(LlmClient).preload(self.rpc())
    return {"model": reply.model, "load_seconds": round(reply.load_seconds, 3), "already_loaded": reply.already_loaded}
