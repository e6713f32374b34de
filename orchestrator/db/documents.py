"""Storing and reading documents with their chunk vectors."""

from __future__ import annotations

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from orchestrator.db.models import Chunk, Document


def save_document(session: Session, document: Document, chunks: list[dict], vectors: np.ndarray) -> int:
    """Replaces the document and its chunks (idempotent: a re-delivered store
    stage writes the same rows again, not twice)."""
    if len(chunks) != len(vectors):
        raise ValueError(f"{len(chunks)} chunks but {len(vectors)} vectors")
    session.execute(delete(Chunk).where(Chunk.document_id == document.id))
    session.merge(document)
    session.flush()
    session.add_all(
        Chunk(document_id=document.id, index=c["index"], page=c.get("page", 0), text=c["text"],
              embedding=[float(x) for x in vector])
        for c, vector in zip(chunks, vectors)
    )
    return len(chunks)


def load_chunks(session: Session, document_id: str) -> tuple[list[str], np.ndarray]:
    rows = session.execute(
        select(Chunk.text, Chunk.embedding).where(Chunk.document_id == document_id).order_by(Chunk.index)
    ).all()
    texts = [r.text for r in rows]
    vectors = np.array([r.embedding for r in rows], dtype=np.float32) if rows else np.zeros((0, 0), np.float32)
    return texts, vectors


def document_exists(session: Session, document_id: str) -> bool:
    return session.get(Document, document_id) is not None
