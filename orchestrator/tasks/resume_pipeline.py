"""Resume pipeline (seed 000): parse_pdf (cpu) → generate_embeddings (gpu) → store_chunks (cpu)."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from pydantic import BaseModel, Field

from orchestrator.db import session_scope
from orchestrator.db.documents import save_document
from orchestrator.db.models import Document
from orchestrator.errors import InvalidInput
from orchestrator.stage import StageTask
from orchestrator.tasks._embedding import embed_texts
from orchestrator.text import chunk_pages


class ResumeInput(BaseModel):
    pdf: str = Field(description="blob reference of the PDF")
    filename: str = ""
    max_pages: int | None = Field(None, ge=1)


class ParsedResume(BaseModel):
    document_id: str
    source: str
    filename: str = ""
    title: str = ""
    page_count: int
    chunk_count: int = Field(ge=1)
    chunks_ref: str
    preview: str = ""


class EmbeddedResume(ParsedResume):
    vectors_ref: str
    dimension: int
    model: str


@shared_task(bind=True, base=StageTask, name="tasks.resume_pipeline.parse_pdf")
def parse_pdf(self: StageTask, payload: dict[str, Any]) -> dict[str, Any]:
    data = self.validate(ResumeInput, payload)
    self.report("PROGRESS", 10, "parsing PDF")
    pdf = self.resources.blobs.get(data.pdf)
    reply = self.resources.parser().parse_pdf(pdf, self.rpc(), data.max_pages)
    if not reply.has_text:
        raise InvalidInput("the PDF has no extractable text (a scan?): nothing to embed")
    settings = self.resources.settings
    chunks = chunk_pages([(p.number, p.text) for p in reply.pages], settings.chunk_chars, settings.chunk_overlap)
    if not chunks:  # text the parser saw, yet only invisible characters once cleaned
        raise InvalidInput("the PDF has no text once cleaned (only invisible characters): nothing to embed")
    self.report("PROGRESS", 90, f"{reply.metadata.page_count} pages, {len(chunks)} chunks")
    return ParsedResume(
        document_id=self.stage_context().pipeline_id, source=data.pdf, filename=data.filename,
        title=reply.metadata.title, page_count=reply.metadata.page_count, chunk_count=len(chunks),
        chunks_ref=self.resources.blobs.put_json([c.__dict__ for c in chunks]),
        preview=chunks[0].text[:200],
    ).model_dump()


@shared_task(bind=True, base=StageTask, name="tasks.resume_pipeline.generate_embeddings")
def generate_embeddings(self: StageTask, parsed: dict[str, Any]) -> dict[str, Any]:
    data = self.validate(ParsedResume, parsed)
    chunks = self.resources.blobs.get_json(data.chunks_ref)
    self.report("PROGRESS", 5, f"embedding {len(chunks)} chunks")
    vectors, model = embed_texts(self, [c["text"] for c in chunks])
    return EmbeddedResume(
        **data.model_dump(), vectors_ref=self.resources.blobs.put_array(vectors),
        dimension=int(vectors.shape[1]), model=model,
    ).model_dump()


def store_document(task: StageTask, data: EmbeddedResume, kind: str) -> dict[str, Any]:
    """Shared by the resume and document pipelines' store stages."""
    chunks = task.resources.blobs.get_json(data.chunks_ref)
    vectors = task.resources.blobs.get_array(data.vectors_ref)
    task.report("PROGRESS", 30, f"storing {len(chunks)} chunks")
    document = Document(
        id=data.document_id, kind=kind, source=data.source, filename=data.filename, title=data.title,
        page_count=data.page_count, embedding_model=data.model, pipeline_id=task.stage_context().pipeline_id,
        metadata_={"dimension": data.dimension},
    )
    with session_scope(task.resources.settings.database_url) as session:
        stored = save_document(session, document, chunks, vectors)
    return {"document_id": data.document_id, "kind": kind, "title": data.title, "page_count": data.page_count,
            "chunks": stored, "dimension": data.dimension, "model": data.model, "preview": data.preview}


@shared_task(bind=True, base=StageTask, name="tasks.resume_pipeline.store_chunks")
def store_chunks(self: StageTask, embedded: dict[str, Any]) -> dict[str, Any]:
    return store_document(self, self.validate(EmbeddedResume, embedded), kind="resume")
