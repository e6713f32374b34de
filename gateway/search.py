"""Search over the stored chunks, for REST, gRPC and the CLI: the query is
embedded by svc-embedder with a direct call (search is interactive, no Celery
round trip), then PostgreSQL's HNSW index finds the nearest chunks."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import grpc
import numpy as np
import sqlalchemy.exc
from celery import Celery

from orchestrator.clients import CallContext, EmbedderClient
from orchestrator.errors import RetryableServiceError, ServiceCallError
from orchestrator.storage.db import session_scope
from orchestrator.storage.db.documents import Hit, search
from svc_runtime.errors import InvalidArgument, ResourceExhausted, Unavailable

KINDS = ("resume", "document")
MAX_QUERY_CHARS = 2000
MAX_K = 100
EMBED_TIMEOUT_SECONDS = 10.0


@dataclass
class SearchResult:
    results: list[Hit]
    embed_ms: float
    search_ms: float


class SearchService:
    def __init__(self, app: Celery) -> None:
        self.app = app

    async def search(
        self, query: str, k: int = 5, document_ids: list[str] | None = None, kind: str | None = None
    ) -> SearchResult:
        query = query.strip()
        if not query or len(query) > MAX_QUERY_CHARS:
            raise InvalidArgument(f"query must be 1 to {MAX_QUERY_CHARS} characters")
        if not 1 <= k <= MAX_K:
            raise InvalidArgument(f"k must be 1 to {MAX_K}, got {k}")
        if kind is not None and kind not in KINDS:
            raise InvalidArgument(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        started = time.perf_counter()
        vector = await asyncio.to_thread(self._embed, query)
        embedded = time.perf_counter()
        hits = await asyncio.to_thread(self._nearest, vector, k, document_ids, kind)
        return SearchResult(hits, _ms(started, embedded), _ms(embedded, time.perf_counter()))

    def _embed(self, query: str) -> np.ndarray:
        client = self.app.aiworker.client(EmbedderClient)
        try:
            reply = client.embed([query], CallContext(timeout=EMBED_TIMEOUT_SECONDS), normalize=True)
        except RetryableServiceError as exc:
            if getattr(exc, "code", None) == grpc.StatusCode.RESOURCE_EXHAUSTED:
                raise ResourceExhausted(f"the embedder is busy, try again: {exc}") from None
            raise Unavailable(f"the embedder is unavailable: {exc}") from None
        except ServiceCallError as exc:
            raise InvalidArgument(str(exc)) from None
        return np.asarray(reply.vectors[0].values, dtype=np.float32)

    def _nearest(self, vector: np.ndarray, k: int, document_ids: list[str] | None, kind: str | None) -> list[Hit]:
        settings = self.app.aiworker.settings
        try:
            with session_scope(settings.database_url) as session:
                return search(session, vector, k, document_ids, kind, settings.search_ef)
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError) as exc:
            raise Unavailable(f"the document store is unavailable: {str(exc).splitlines()[0]}") from None


def _ms(start: float, end: float) -> float:
    return round((end - start) * 1000, 3)
