"""Document Q&A: retrieve (gpu: embed the question, find the nearest stored
chunks) → answer (gpu: the LLM answers from them, streaming its text into the
pipeline's live status as it writes, with citations)."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from orchestrator.broker.routing import GPU_QUEUE
from orchestrator.clients import EmbedderClient
from orchestrator.domain.qa import citations, qa_messages
from orchestrator.pipelines.declarations import stage_task
from orchestrator.pipelines.stage import StageTask
from orchestrator.storage.db import session_scope
from orchestrator.storage.db.documents import search

NOTHING_FOUND = "I found nothing in the stored documents to answer from."


class QuestionInput(BaseModel):
    question: str = Field(min_length=1, max_length=2000, description="the question")
    document_ids: list[str] | None = Field(None, max_length=100, description="answer only from these documents")
    k: int = Field(4, ge=1, le=20, description="how many excerpts the answer draws on")
    max_new_tokens: int = Field(160, ge=1, le=2048, description="longest answer, in tokens")


class Retrieved(QuestionInput):
    excerpts: list[dict[str, Any]]
    embedding_model: str = ""


@stage_task("tasks.document_qa.retrieve", queue=GPU_QUEUE)
def retrieve(self: StageTask, payload: dict[str, Any]) -> dict[str, Any]:
    data = self.validate(QuestionInput, payload)
    self.report("PROGRESS", 20, "embedding the question")
    reply = self.resources.client(EmbedderClient).embed([data.question], self.rpc(), normalize=True)
    vector = np.asarray(reply.vectors[0].values, dtype=np.float32)
    self.report("PROGRESS", 60, "finding the nearest passages")
    settings = self.resources.settings
    with session_scope(settings.database_url) as session:
        hits = search(session, vector, data.k, data.document_ids, None, settings.search_ef)
    return Retrieved(**data.model_dump(), excerpts=[h.__dict__ for h in hits], embedding_model=reply.model).model_dump()


@stage_task("tasks.document_qa.answer", queue=GPU_QUEUE)
def answer(self: StageTask, retrieved: dict[str, Any]) -> dict[str, Any]:
    data = self.validate(Retrieved, retrieved)
    if not data.excerpts:
        return {
            "question": data.question,
            "answer": NOTHING_FOUND,
            "citations": [],
            "model": "",
            "completion_tokens": 0,
        }
    self.report("PROGRESS", 5, f"answering from {len(data.excerpts)} passages")
    reply = self.generate_reporting(
        qa_messages(data.question, data.excerpts), data.max_new_tokens, 5, 99, "writing", show_partial=True
    )
    text = reply.text.strip()
    return {
        "question": data.question,
        "answer": text,
        "citations": citations(text, data.excerpts),
        "model": reply.model,
        "completion_tokens": reply.completion_tokens,
    }
