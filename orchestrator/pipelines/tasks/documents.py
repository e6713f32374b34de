"""What the resume and document pipelines share: a chunked document, its
embedding in bounded calls, and storing it with its vectors."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from orchestrator.clients import EmbedderClient
from orchestrator.errors import InvalidInput
from orchestrator.pipelines.stage import StageTask
from orchestrator.storage.db import session_scope
from orchestrator.storage.db.documents import save_document
from orchestrator.storage.db.models import Document

EMBED_CALL_SIZE = 64  # texts per Embed call; the service batches across callers


class ChunkedDocument(BaseModel):
    document_id: str
    source: str
    filename: str = ""
    title: str = ""
    page_count: int
    chunk_count: int = Field(ge=1)
    chunks_ref: str
    preview: str = ""


class EmbeddedDocument(ChunkedDocument):
    vectors_ref: str
    dimension: int
    model: str


def embed_texts(
    task: StageTask, texts: list[str], progress_from: int = 10, progress_to: int = 90
) -> tuple[np.ndarray, str]:
    vectors: list[np.ndarray] = []
    model = ""
    client = task.resources.client(EmbedderClient)
    for start in range(0, len(texts), EMBED_CALL_SIZE):
        reply = client.embed(texts[start : start + EMBED_CALL_SIZE], task.rpc(), normalize=True)
        model = reply.model
        vectors.extend(np.asarray(v.values, dtype=np.float32) for v in reply.vectors)
        done = min(start + EMBED_CALL_SIZE, len(texts))
        task.report(
            "PROGRESS",
            progress_from + (progress_to - progress_from) * done // len(texts),
            f"embedded {done}/{len(texts)} chunks",
        )
    return np.stack(vectors), model


def embed_chunks(task: StageTask, data: ChunkedDocument) -> dict[str, Any]:
    chunks = task.resources.blobs.get_json(data.chunks_ref)
    task.report("PROGRESS", 5, f"embedding {len(chunks)} chunks")
    vectors, model = embed_texts(task, [c["text"] for c in chunks])
    return EmbeddedDocument(
        **data.model_dump(),
        vectors_ref=task.resources.blobs.put_array(vectors),
        dimension=int(vectors.shape[1]),
        model=model,
    ).model_dump()


def store_document(task: StageTask, data: EmbeddedDocument, kind: str) -> dict[str, Any]:
    chunks = task.resources.blobs.get_json(data.chunks_ref)
    vectors = task.resources.blobs.get_array(data.vectors_ref)
    expected = task.resources.settings.embedding_dimension
    if vectors.shape[1] != expected:
        raise InvalidInput(
            f"the embedder made {vectors.shape[1]}-dimensional vectors but the database stores {expected} "
            "(AIWORKER_EMBEDDING_DIMENSION): use the embedder the database was migrated for"
        )
    task.report("PROGRESS", 30, f"storing {len(chunks)} chunks")
    document = Document(
        id=data.document_id,
        kind=kind,
        source=data.source,
        filename=data.filename,
        title=data.title,
        page_count=data.page_count,
        embedding_model=data.model,
        pipeline_id=task.stage_context().pipeline_id,
        metadata_={"dimension": data.dimension},
    )
    with session_scope(task.resources.settings.database_url) as session:
        stored = save_document(session, document, chunks, vectors)
    return {
        "document_id": data.document_id,
        "kind": kind,
        "title": data.title,
        "page_count": data.page_count,
        "chunks": stored,
        "dimension": data.dimension,
        "model": data.model,
        "preview": data.preview,
    }
