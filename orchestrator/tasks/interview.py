"""Interview answer pipeline: stt.recognize (gpu) → evaluator.analyze_answer (gpu)
→ question_generation.generate (gpu); and question_generation.preload_model,
sent when an interview starts so the first follow-up has no load delay (seed 000)."""

from __future__ import annotations

from typing import Any

import numpy as np
from celery import shared_task
from pydantic import BaseModel, Field

from orchestrator.db import session_scope
from orchestrator.db.documents import document_exists, load_chunks
from orchestrator.errors import InvalidInput
from orchestrator.evaluation import (
    cosine_similarities, evaluation_messages, extract_question, fallback_question, follow_up_messages,
    parse_evaluation,
)
from orchestrator.stage import StageTask

TOP_CHUNKS = 3


class AnswerInput(BaseModel):
    audio: str = Field(description="blob reference of the recorded answer")
    language: str = Field("en", max_length=8)
    resume_id: str | None = None
    question: str = Field("", max_length=2000)


class Transcript(BaseModel):
    transcript: str
    language: str = ""
    duration_s: float = 0.0
    segments: list[dict[str, Any]] = []
    resume_id: str | None = None
    question: str = ""


class Evaluated(Transcript):
    evaluation: dict[str, Any]


@shared_task(bind=True, base=StageTask, name="tasks.stt.recognize")
def recognize(self: StageTask, payload: dict[str, Any]) -> dict[str, Any]:
    data = self.validate(AnswerInput, payload)
    audio = self.resources.blobs.get(data.audio)
    self.report("PROGRESS", 10, f"transcribing {len(audio)} bytes of audio")
    reply = self.resources.stt().recognize(audio, self.rpc(), language=data.language)
    return Transcript(
        transcript=reply.text.strip(), language=reply.language, duration_s=round(reply.duration_s, 2),
        segments=[{"start": round(s.start, 2), "end": round(s.end, 2), "text": s.text.strip()}
                  for s in reply.segments],
        resume_id=data.resume_id, question=data.question,
    ).model_dump()


def _resume_context(task: StageTask, resume_id: str | None, answer: str) -> dict[str, Any]:
    """The resume chunks closest to the answer, and how close they are."""
    if not resume_id:
        return {"resume_id": None, "similarity_max": None, "similarity_mean": None, "relevant_chunks": []}
    with session_scope(task.resources.settings.database_url) as session:
        if not document_exists(session, resume_id):
            raise InvalidInput(f"resume {resume_id!r} not found: run the resume pipeline first")
        texts, vectors = load_chunks(session, resume_id)
    reply = task.resources.embedder().embed([answer], task.rpc(), normalize=True)
    scores = cosine_similarities(np.asarray(reply.vectors[0].values, dtype=np.float32), vectors)
    order = np.argsort(-scores)[:TOP_CHUNKS]
    return {
        "resume_id": resume_id,
        "similarity_max": round(float(scores.max()), 4) if scores.size else None,
        "similarity_mean": round(float(scores.mean()), 4) if scores.size else None,
        "relevant_chunks": [{"text": texts[i], "similarity": round(float(scores[i]), 4)} for i in order],
    }


@shared_task(bind=True, base=StageTask, name="tasks.evaluator.analyze_answer")
def analyze_answer(self: StageTask, transcript: dict[str, Any]) -> dict[str, Any]:
    data = self.validate(Transcript, transcript)
    if not data.transcript:
        raise InvalidInput("the answer has no recognisable speech: nothing to evaluate")
    self.report("PROGRESS", 10, "comparing the answer with the resume")
    resume = _resume_context(self, data.resume_id, data.transcript)
    self.report("PROGRESS", 40, "scoring the answer")
    excerpts = [c["text"] for c in resume["relevant_chunks"]]
    reply = self.resources.llm().generate(
        evaluation_messages(data.question, data.transcript, excerpts), self.rpc(),
        max_new_tokens=self.resources.settings.llm_max_new_tokens)
    score, feedback = parse_evaluation(reply.text)
    return Evaluated(**data.model_dump(), evaluation={
        "score": score, "feedback": feedback or reply.text.strip(), "llm_output": reply.text, **resume,
    }).model_dump()


class FollowUpInput(BaseModel):
    transcript: str = Field(min_length=1, description="the candidate's answer")
    question: str = ""
    resume_id: str | None = None
    evaluation: dict[str, Any] = {}


@shared_task(bind=True, base=StageTask, name="tasks.question_generation.generate")
def generate(self: StageTask, evaluated: dict[str, Any]) -> dict[str, Any]:
    data = self.validate(FollowUpInput, evaluated)
    chunks = data.evaluation.get("relevant_chunks")
    if chunks is None:
        chunks = _resume_context(self, data.resume_id, data.transcript)["relevant_chunks"]
    self.report("PROGRESS", 20, "generating a follow-up question")
    reply = self.resources.llm().generate(
        follow_up_messages(data.question, data.transcript, [c["text"] for c in chunks]), self.rpc(),
        max_new_tokens=self.resources.settings.llm_max_new_tokens)
    question = extract_question(reply.text)
    source = "llm"
    if question is None:
        question, source = fallback_question(data.transcript), "template"
    return {**evaluated, "follow_up_question": question, "follow_up_source": source, "llm_output": reply.text}


@shared_task(bind=True, base=StageTask, name="tasks.question_generation.preload_model")
def preload_model(self: StageTask, payload: dict[str, Any] | None = None) -> dict[str, Any]:
    self.report("PROGRESS", 10, "loading the LLM")
    reply = self.resources.llm().preload(self.rpc())
    return {"model": reply.model, "load_seconds": round(reply.load_seconds, 3), "already_loaded": reply.already_loaded}
