"""Storing and reading documents with their chunk vectors."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from sqlalchemy import delete, select, text
from sqlalchemy.orm import Session

from orchestrator.storage.db.models import Chunk, Document


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
       1 - (c.embedding <=> CAST(:query AS vector)) AS score, d.source, d.created_at
FROM chunks c JOIN documents d ON d.id = c.document_id
WHERE {where}
ORDER BY c.embedding <=> CAST(:query AS vector)
LIMIT :fetch
"""
# A file stored twice (the same upload again, `make demo` run twice) has its passages twice: they
# are asked for this many times k, and each comes back once. Asked again for more while copies
# crowd out k distinct passages, up to MAX_FETCH rows.
FETCH_FACTOR = 2
MAX_FETCH = 1000  # hnsw.ef_search's upper bound
_HIT_FIELDS = {f.name for f in fields(Hit)} - {"score"}


def search(
    session: Session,
    query: np.ndarray,
    k: int,
    document_ids: list[str] | None = None,
    kind: str | None = None,
    ef_search: int = 100,
) -> list[Hit]:
    """The k passages nearest to `query` (cosine), optionally within some documents or of
    one kind; a passage of a file stored more than once comes back once, from its newest
    copy. Unfiltered and kind-filtered searches walk the HNSW index (considering
    `ef_search` candidates: recall against speed); a search within given documents reads
    just their chunks, exactly."""
    where, params = ["TRUE"], {"query": _vector_literal(query)}
    if document_ids:
        where.append("c.document_id = ANY(:ids)")
        params["ids"] = list(document_ids)
    if kind:
        where.append("d.kind = :kind")
        params["kind"] = kind
    statement = text(_SEARCH.format(where=" AND ".join(where)))
    fetch = k * FETCH_FACTOR
    while True:
        # pgvector's HNSW scan yields at most ef_search rows
        session.execute(text(f"SET LOCAL hnsw.ef_search = {max(int(ef_search), fetch)}"))
        rows = session.execute(statement, {**params, "fetch": fetch}).mappings().all()
        hits = _each_passage_once(rows)
        if len(hits) >= k or len(rows) < fetch or fetch >= MAX_FETCH:
            return hits[:k]
        fetch = min(fetch * 4, MAX_FETCH)


def _each_passage_once(rows) -> list[Hit]:
    """The rows, nearest first, with the copies of one passage of one file (same source blob,
    kind, chunk and text) folded into the newest copy, at the place and score of the nearest."""
    copies: dict[tuple, list] = {}
    for row in rows:
        copies.setdefault((row["source"], row["kind"], row["chunk_index"], row["text"]), []).append(row)
    return [
        Hit(
            **{name: value for name, value in max(same, key=lambda r: r["created_at"]).items() if name in _HIT_FIELDS},
            score=round(float(same[0]["score"]), 6),
        )
        for same in copies.values()
    ]


def _vector_literal(vector: np.ndarray) -> str:
    return "[" + ",".join(f"{float(x):.7g}" for x in np.asarray(vector, dtype=np.float32).ravel()) + "]"
