"""Document pipeline: parse (cpu) → chunk (cpu) → embed (gpu) → store (cpu)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from orchestrator.broker.routing import CPU_QUEUE, GPU_QUEUE
from orchestrator.clients import ParserClient
from orchestrator.domain.text import chunk_pages, clean_text
from orchestrator.errors import InvalidInput
from orchestrator.pipelines.declarations import stage_task
from orchestrator.pipelines.stage import StageTask
from orchestrator.pipelines.tasks.documents import ChunkedDocument, EmbeddedDocument, embed_chunks, store_document

TEXT_TYPES = ("text/plain", "text/markdown")


class DocumentInput(BaseModel):
    document: str = Field(description="blob reference of the file")
    filename: str = ""
    content_type: str = "application/pdf"


class ParsedDocument(BaseModel):
    document_id: str
    source: str
    filename: str = ""
    title: str = ""
    page_count: int
    pages_ref: str
    chars: int


@stage_task("tasks.document_pipeline.parse", queue=CPU_QUEUE)
def parse(self: StageTask, payload: dict[str, Any]) -> dict[str, Any]:
    data = self.validate(DocumentInput, payload)
    raw = self.resources.blobs.get(data.document)
    self.report("PROGRESS", 10, f"extracting text from {data.filename or 'the document'}")
    if data.content_type in TEXT_TYPES:
        try:
            pages, title = [(1, raw.decode("utf-8"))], data.filename
        except UnicodeDecodeError as exc:
            raise InvalidInput(f"text document is not UTF-8 (byte {exc.start})") from None
    elif data.content_type == "application/pdf":
        reply = self.resources.client(ParserClient).parse_pdf(raw, self.rpc())
        pages, title = [(p.number, p.text) for p in reply.pages], reply.metadata.title or data.filename
    else:
        raise InvalidInput(f"unsupported content type {data.content_type!r}: use application/pdf or text/plain")
    # What chunking keeps: whitespace, control and invisible characters are no text. Checked
    # before anything is stored, so a document with nothing to embed leaves no blob behind.
    if not any(clean_text(text) for _, text in pages):
        raise InvalidInput(
            "the document has no text (empty, or only whitespace or invisible characters): nothing to embed"
        )
    chars = sum(len(text) for _, text in pages)
    return ParsedDocument(
        document_id=self.stage_context().pipeline_id,
        source=data.document,
        filename=data.filename,
        title=title,
        page_count=len(pages),
        pages_ref=self.resources.blobs.put_json(pages),
        chars=chars,
    ).model_dump()


@stage_task("tasks.document_pipeline.chunk", queue=CPU_QUEUE)
def chunk(self: StageTask, parsed: dict[str, Any]) -> dict[str, Any]:
    data = self.validate(ParsedDocument, parsed)
    settings = self.resources.settings
    pages = [tuple(p) for p in self.resources.blobs.get_json(data.pages_ref)]
    self.report("PROGRESS", 10, f"chunking {len(pages)} pages")
    chunks = chunk_pages(pages, settings.chunk_chars, settings.chunk_overlap)
    if not chunks:  # parse refuses such documents; a hand-made input may still get here
        raise InvalidInput("the document has no text to chunk: nothing to embed")
    self.report("PROGRESS", 90, f"{len(chunks)} chunks")
    return ChunkedDocument(
        document_id=data.document_id,
        source=data.source,
        filename=data.filename,
        title=data.title,
        page_count=data.page_count,
        chunk_count=len(chunks),
        chunks_ref=self.resources.blobs.put_json([c.__dict__ for c in chunks]),
        preview=chunks[0].text[:200],
    ).model_dump()


@stage_task("tasks.document_pipeline.embed", queue=GPU_QUEUE)
def embed(self: StageTask, chunked: dict[str, Any]) -> dict[str, Any]:
    return embed_chunks(self, self.validate(ChunkedDocument, chunked))


@stage_task("tasks.document_pipeline.store", queue=CPU_QUEUE)
def store(self: StageTask, embedded: dict[str, Any]) -> dict[str, Any]:
    return store_document(self, self.validate(EmbeddedDocument, embedded), kind="document")
