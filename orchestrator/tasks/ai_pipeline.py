"""The generic 4-stage AI pipeline (seeds 001/004), doing real work: clean the
text → embed it → ask the LLM → shape the result. Return shapes follow the seed
(`chain_id`, `result`, the previous stage's data nested)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from celery import shared_task
from pydantic import BaseModel, Field, field_validator

from orchestrator.errors import InvalidInput
from orchestrator.evaluation import summary_messages
from orchestrator.stage import StageTask
from orchestrator.text import clean_text

MAX_TEXT_CHARS = 20_000
INSTRUCTIONS = {
    "summarize": "Summarize the following text in two sentences.",
    "keywords": "List the five most important keywords of the following text, comma separated.",
    "sentiment": "Is the tone of the following text positive, negative or neutral? Answer with one word, then why.",
}


MAX_NEW_TOKENS = 2048


class AiPipelineInput(BaseModel):
    """Checked at submit time (a 4xx there) and again by stage 1 (for a task sent on its own).
    `options` stays free-form (seed 004's shape); the keys the stages read are checked."""

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
        if tokens is not None and (isinstance(tokens, bool) or not isinstance(tokens, int)
                                   or not 1 <= tokens <= MAX_NEW_TOKENS):
            raise ValueError(f"options.max_new_tokens must be an integer from 1 to {MAX_NEW_TOKENS}, got {tokens!r}")
        return options


@shared_task(bind=True, base=StageTask, name="tasks.ai_pipeline.stage1_preprocessing")
def stage1_preprocessing(self: StageTask, payload: dict[str, Any]) -> dict[str, Any]:
    data = self.validate(AiPipelineInput, payload)
    task = data.options.get("task", "summarize")
    self.report("PROGRESS", 50, "cleaning the text")
    text = clean_text(data.text)
    return {"chain_id": self.stage_context().pipeline_id, "result": "stage1_completed",
            "data": {"text": text, "options": {**data.options, "task": task},
                     "stats": {"chars": len(text), "words": len(text.split()), "lines": text.count("\n") + 1}}}


@shared_task(bind=True, base=StageTask, name="tasks.ai_pipeline.stage2_feature_extraction")
def stage2_feature_extraction(self: StageTask, stage1: dict[str, Any]) -> dict[str, Any]:
    text = _field(stage1, "data", "text")
    self.report("PROGRESS", 30, "embedding the text")
    reply = self.resources.embedder().embed([text], self.rpc(), normalize=True)
    vector = np.asarray(reply.vectors[0].values, dtype=np.float32)
    self.report("PROGRESS", 70, "vectorised")
    return {"chain_id": stage1["chain_id"], "result": "stage2_completed", "stage1_data": stage1,
            "features": {"model": reply.model, "dimension": reply.dimension,
                         "vector_ref": self.resources.blobs.put_array(vector[None, :]),
                         "norm": round(float(np.linalg.norm(vector)), 4),
                         "truncated": bool(reply.truncated)}}


@shared_task(bind=True, base=StageTask, name="tasks.ai_pipeline.stage3_model_inference")
def stage3_model_inference(self: StageTask, stage2: dict[str, Any]) -> dict[str, Any]:
    stage1 = _field(stage2, "stage1_data")
    text, options = _field(stage1, "data", "text"), stage1["data"]["options"]
    self.report("PROGRESS", 40, "running the model")
    started = time.monotonic()
    reply = self.resources.llm().generate(
        summary_messages(text, INSTRUCTIONS[options["task"]]), self.rpc(),
        max_new_tokens=int(options.get("max_new_tokens", self.resources.settings.llm_max_new_tokens)))
    return {"chain_id": stage2["chain_id"], "result": "stage3_completed", "stage2_data": stage2,
            "inference": {"task": options["task"], "text": reply.text.strip(), "model": reply.model,
                          "completion_tokens": reply.usage.completion_tokens,
                          "seconds": round(time.monotonic() - started, 3)}}


@shared_task(bind=True, base=StageTask, name="tasks.ai_pipeline.stage4_post_processing")
def stage4_post_processing(self: StageTask, stage3: dict[str, Any]) -> dict[str, Any]:
    inference = _field(stage3, "inference")
    self.report("PROGRESS", 80, "shaping the result")
    features = stage3["stage2_data"]["features"]
    stats = stage3["stage2_data"]["stage1_data"]["data"]["stats"]
    return {"chain_id": stage3["chain_id"], "result": "pipeline_completed", "stage3_data": stage3,
            "output": {"task": inference["task"], "answer": inference["text"], "input_stats": stats,
                       "embedding": {"model": features["model"], "dimension": features["dimension"]},
                       "llm": {"model": inference["model"], "completion_tokens": inference["completion_tokens"]}}}


def _field(data: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            raise InvalidInput(f"previous stage's result has no {'.'.join(path)!r}")
        data = data[key]
    return data
