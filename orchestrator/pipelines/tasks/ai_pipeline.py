"""The generic 4-stage AI pipeline (docs/decisions/0013-the-pipelines-and-their-origins.md), doing real work: clean the
text → embed it → ask the LLM → shape the result. Return shapes follow the seed
(`chain_id`, `result`, the previous stage's data nested)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from pydantic import BaseModel, Field, field_validator

from orchestrator.broker.routing import CPU_QUEUE, GPU_QUEUE
from orchestrator.clients import EmbedderClient
from orchestrator.domain.evaluation import summary_messages
from orchestrator.domain.text import clean_text
from orchestrator.errors import InvalidInput
from orchestrator.pipelines.declarations import stage_task
from orchestrator.pipelines.stage import StageTask
from orchestrator.storage.db import session_scope
from orchestrator.storage.db.documents import search

MAX_TEXT_CHARS = 20_000
INSTRUCTIONS = {
    "summarize": "Summarize the following text in two sentences.",
    "keywords": "List the five most important keywords of the following text, comma separated.",
    "sentiment": "Is the tone of the following text positive, negative or neutral? Answer with one word, then why.",
}


MAX_NEW_TOKENS = 2048
CONTEXT_PASSAGES = 3  # with options.use_context: stored passages stage 3 reads beside the text


class AiPipelineInput(BaseModel):
    """Checked at submit time (a 4xx there) and again by stage 1 (for a task sent on its own).
    `options` stays free-form (the task-chain API's shape); the keys the stages read are checked."""

    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    options: dict[str, Any] = {}

    @field_validator("text")
    @classmethod
    def _has_content(cls, text: str) -> str:
        if not clean_text(text):
            raise ValueError("the text is empty after cleaning (only whitespace, control or invisible characters)")
        return text

    @field_validator("options")
    @classmethod
    def _known_options(cls, options: dict[str, Any]) -> dict[str, Any]:
        task = options.get("task", "summarize")
        if task not in INSTRUCTIONS:
            raise ValueError(f"options.task {task!r} is not one of {sorted(INSTRUCTIONS)}")
        tokens = options.get("max_new_tokens")
        if tokens is not None and (
            isinstance(tokens, bool) or not isinstance(tokens, int) or not 1 <= tokens <= MAX_NEW_TOKENS
        ):
            raise ValueError(f"options.max_new_tokens must be an integer from 1 to {MAX_NEW_TOKENS}, got {tokens!r}")
        if not isinstance(options.get("use_context", False), bool):
            raise ValueError(f"options.use_context must be true or false, got {options['use_context']!r}")
        return options


@stage_task("tasks.ai_pipeline.stage1_preprocessing", queue=CPU_QUEUE)
def stage1_preprocessing(self: StageTask, payload: dict[str, Any]) -> dict[str, Any]:
    data = self.validate(AiPipelineInput, payload)
    task = data.options.get("task", "summarize")
    self.report("PROGRESS", 50, "cleaning the text")
    text = clean_text(data.text)
    return {
        "chain_id": self.stage_context().pipeline_id,
        "result": "stage1_completed",
        "data": {
            "text": text,
            "options": {**data.options, "task": task},
            "stats": {"chars": len(text), "words": len(text.split()), "lines": text.count("\n") + 1},
        },
    }


@stage_task("tasks.ai_pipeline.stage2_feature_extraction", queue=GPU_QUEUE)
def stage2_feature_extraction(self: StageTask, stage1: dict[str, Any]) -> dict[str, Any]:
    text = _field(stage1, "data", "text")
    self.report("PROGRESS", 30, "embedding the text")
    reply = self.resources.client(EmbedderClient).embed([text], self.rpc(), normalize=True)
    vector = np.asarray(reply.vectors[0].values, dtype=np.float32)
    context = []
    if stage1["data"]["options"].get("use_context"):  # the stored passages nearest to the text
        self.report("PROGRESS", 60, "finding related stored passages")
        settings = self.resources.settings
        with session_scope(settings.database_url) as session:
            hits = search(session, vector, CONTEXT_PASSAGES, ef_search=settings.search_ef)
        context = [{"document_id": h.document_id, "page": h.page, "text": h.text, "score": h.score} for h in hits]
    self.report("PROGRESS", 70, "vectorised")
    return {
        "chain_id": stage1["chain_id"],
        "result": "stage2_completed",
        "stage1_data": stage1,
        "features": {
            "model": reply.model,
            "dimension": reply.dimension,
            "context": context,
            "norm": round(float(np.linalg.norm(vector)), 4),
            "truncated": bool(reply.truncated),
        },
    }


@stage_task("tasks.ai_pipeline.stage3_model_inference", queue=GPU_QUEUE)
def stage3_model_inference(self: StageTask, stage2: dict[str, Any]) -> dict[str, Any]:
    stage1 = _field(stage2, "stage1_data")
    text, options = _field(stage1, "data", "text"), stage1["data"]["options"]
    self.report("PROGRESS", 40, "running the model")
    started = time.monotonic()
    reply = self.generate_reporting(
        summary_messages(text, INSTRUCTIONS[options["task"]], [c["text"] for c in stage2["features"]["context"]]),
        int(options.get("max_new_tokens", self.resources.settings.llm_max_new_tokens)),
        40,
        99,
        "running the model",
    )
    return {
        "chain_id": stage2["chain_id"],
        "result": "stage3_completed",
        "stage2_data": stage2,
        "inference": {
            "task": options["task"],
            "text": reply.text.strip(),
            "model": reply.model,
            "completion_tokens": reply.completion_tokens,
            "seconds": round(time.monotonic() - started, 3),
        },
    }


@stage_task("tasks.ai_pipeline.stage4_post_processing", queue=CPU_QUEUE)
def stage4_post_processing(self: StageTask, stage3: dict[str, Any]) -> dict[str, Any]:
    inference = _field(stage3, "inference")
    self.report("PROGRESS", 80, "shaping the result")
    features = stage3["stage2_data"]["features"]
    stats = stage3["stage2_data"]["stage1_data"]["data"]["stats"]
    return {
        "chain_id": stage3["chain_id"],
        "result": "pipeline_completed",
        "stage3_data": stage3,
        "output": {
            "task": inference["task"],
            "answer": inference["text"],
            "input_stats": stats,
            "embedding": {"model": features["model"], "dimension": features["dimension"]},
            "llm": {"model": inference["model"], "completion_tokens": inference["completion_tokens"]},
            "context": [{k: c[k] for k in ("document_id", "page", "score")} for c in features.get("context", [])],
        },
    }


def _field(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            raise InvalidInput(f"previous stage's result has no {'.'.join(path)!r}")
        data = data[key]
    return data
