"""A pipeline added the way a team adds its own: this task module and one
registry entry, loaded by AIWORKER_PIPELINE_MODULES (workers and the gateway).
No other file names it. Stage 1 (cpu) splits the text into words; stage 2 (gpu)
embeds the longest one through svc-embedder."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from orchestrator.broker.routing import CPU_QUEUE, GPU_QUEUE
from orchestrator.clients import EmbedderClient
from orchestrator.pipelines.declarations import stage_task
from orchestrator.pipelines.registry import PipelineSpec, register
from orchestrator.pipelines.stage import StageTask


class WordsInput(BaseModel):
    text: str = Field(min_length=1, max_length=10_000, description="any text")


@stage_task("tasks.word_stats.split", queue=CPU_QUEUE)
def split(self: StageTask, payload: dict[str, Any]) -> dict[str, Any]:
    data = self.validate(WordsInput, payload)
    self.report("PROGRESS", 50, "splitting")
    return {"words": data.text.split()}


@stage_task("tasks.word_stats.embed_longest", queue=GPU_QUEUE)
def embed_longest(self: StageTask, split_result: dict[str, Any]) -> dict[str, Any]:
    longest = max(split_result["words"], key=len)
    reply = self.resources.client(EmbedderClient).embed([longest], self.rpc())
    return {"count": len(split_result["words"]), "longest": longest, "dimension": reply.dimension}


register(PipelineSpec("word_stats", (split, embed_longest), WordsInput, "text → words → the longest, embedded", 2))
