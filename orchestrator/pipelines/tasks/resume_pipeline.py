"""Resume pipeline: parse_pdf (cpu) → generate_embeddings (gpu) → store_chunks (cpu)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from orchestrator.broker.routing import CPU_QUEUE, GPU_QUEUE
from orchestrator.clients import ParserClient
from orchestrator.domain.text import chunk_pages
from orchestrator.errors import InvalidInput
from orchestrator.pipelines.declarations import stage_task
from orchestrator.pipelines.stage import StageTask
from orchestrator.pipelines.tasks.documents import ChunkedDocument, EmbeddedDocument, embed_chunks, store_document


class ResumeInput(BaseModel):
    pdf: str = Field(description="blob reference of the PDF")
    filename: str = ""
    max_pages: int | None = Field(None, ge=1)


@stage_task("tasks.resume_pipeline.parse_pdf", queue=CPU_QUEUE)
def parse_pdf(self: StageTask, payload: dict[str, Any]) -> dict[str, Any]:
    data = self.validate(ResumeInput, payload)
    self.report("PROGRESS", 10, "parsing PDF")
    pdf = self.resources.blobs.get(data.pdf)
    reply = self.resources.client(ParserClient).parse_pdf(pdf, self.rpc(), data.max_pages)
    if not reply.has_text:
        raise InvalidInput("the PDF has no extractable text (a scan?): nothing to embed")
    settings = self.resources.settings
    chunks = chunk_pages([(p.number, p.text) for p in reply.pages], settings.chunk_chars, settings.chunk_overlap)
    if not chunks:  # text the parser saw, yet only invisible characters once cleaned
        raise InvalidInput("the PDF has no text once cleaned (only invisible characters): nothing to embed")
    self.report("PROGRESS", 90, f"{reply.metadata.page_count} pages, {len(chunks)} chunks")
    return ChunkedDocument(
        document_id=self.stage_context().pipeline_id,
        source=data.pdf,
        filename=data.filename,
        title=reply.metadata.title,
        page_count=reply.metadata.page_count,
        chunk_count=len(chunks),
        chunks_ref=self.resources.blobs.put_json([c.__dict__ for c in chunks]),
        preview=chunks[0].text[:200],
    ).model_dump()


@stage_task("tasks.resume_pipeline.generate_embeddings", queue=GPU_QUEUE)
def generate_embeddings(self: StageTask, parsed: dict[str, Any]) -> dict[str, Any]:
    return embed_chunks(self, self.validate(ChunkedDocument, parsed))


@stage_task("tasks.resume_pipeline.store_chunks", queue=CPU_QUEUE)
def store_chunks(self: StageTask, embedded: dict[str, Any]) -> dict[str, Any]:
    return store_document(self, self.validate(EmbeddedDocument, embedded), kind="resume")
