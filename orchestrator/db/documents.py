"""Storing and reading documents with their chunk vectors."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import delete, select, text
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
        Chunk(
            document_id=document.id,
            index=c["index"],
            page=c.get("page", 0),
            text=c["text"],
            embedding=np.asarray(vector, dtype=np.float32),
        )
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


@dataclass(frozen=True)
class Hit:
    document_id: str
    kind: str
    filename: str
    title: str
    chunk_index: int
    page: int
    text: str
    score: float  # cosine similarity, 1 = the same direction


_SEARCH = """
SELECT c.document_id, d.kind, d.filename, d.title, c.index AS chunk_index, c.page, c.text,
       1 - (c.embedding <=> CAST(:query AS vector)) AS score
FROM chunks c JOIN documents d ON d.id = c.document_id
WHERE {where}
ORDER BY c.embedding <=> CAST(:query AS vector)
LIMIT :k
"""


def search(
    session: Session,
    query: np.ndarray,
    k: int,
    document_ids: list[str] | None = None,
    kind: str | None = None,
    ef_search: int = 100,
) -> list[Hit]:
    """The k chunks nearest to `query` (cosine), optionally within some documents or of
    one kind. Unfiltered and kind-filtered searches walk the HNSW index (considering
    `ef_search` candidates: recall against speed); a search within given documents reads
    just their chunks, exactly."""
    where, params = ["TRUE"], {"query": _vector_literal(query), "k": k}
    if document_ids:
        where.append("c.document_id = ANY(:ids)")
        params["ids"] = list(document_ids)
    if kind:
        where.append("d.kind = :kind")
        params["kind"] = kind
    session.execute(text(f"SET LOCAL hnsw.ef_search = {max(int(ef_search), k)}"))
    rows = session.execute(text(_SEARCH.format(where=" AND ".join(where))), params).mappings()
    return [Hit(**{**row, "score": round(float(row["score"]), 6)}) for row in rows]


def _vector_literal(vector: np.ndarray) -> str:
    return "[" + ",".join(f"{float(x):.7g}" for x in np.asarray(vector, dtype=np.float32).ravel()) + "]"
