"""Search over the stored resume and document chunks."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from gateway.rest.deps import require_api_key
from gateway.rest.errors import error_responses
from gateway.rest.schemas import Envelope, SearchHit, SearchRequest, SearchResults, SearchTimings

router = APIRouter(
    prefix="/api/v1", tags=["search"], dependencies=[Depends(require_api_key)], responses=error_responses(401)
)


@router.post(
    "/search",
    response_model=Envelope[SearchResults],
    responses={**error_responses(400, 422, 503), 429: {"description": "the embedder is overloaded: try again"}},
)
async def search(body: SearchRequest, request: Request) -> Envelope[SearchResults]:
    """The chunks nearest to the query (cosine similarity of all-MiniLM-L6-v2 vectors, or the
    configured embedder's), best first."""
    found = await request.app.state.search.search(body.query, body.k, body.document_ids, body.kind)
    return Envelope(
        data=SearchResults(
            results=[SearchHit(**hit.__dict__) for hit in found.results],
            took=SearchTimings(embed_ms=found.embed_ms, search_ms=found.search_ms),
        )
    )
