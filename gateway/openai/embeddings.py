"""POST /v1/embeddings → svc-embedder's Embed.

Vectors are L2-normalised (as OpenAI's are) and returned exactly as the service
computed them: as numbers, or as base64 of their little-endian float32 bytes.
Texts go to the service in calls of TEXTS_PER_CALL (its batcher packs them), so
a client's batch of up to 2048 (LangChain sends 1000) fits the service's
per-call limit.

Token counts: the service does not report them yet, so `usage` is an estimate
(`usage.estimated: true`) of a WordPiece tokenizer's count: [CLS] and [SEP] plus
a piece per punctuation mark and per 6 characters of each word, at most the
model's window; a truncated text counts exactly the window."""

from __future__ import annotations

import base64
import math
import re
from dataclasses import dataclass, field

import numpy as np

from gateway.openai.backend import Backend
from gateway.openai.errors import OpenAIError, unsupported
from gateway.openai.models import ModelCatalog
from gateway.openai.schemas import (
    MAX_EMBEDDING_INPUTS,
    Embedding,
    EmbeddingList,
    EmbeddingRequest,
    EmbeddingUsage,
)
from orchestrator.clients import CallContext, EmbedderClient

EMBED_TIMEOUT_SECONDS = 30.0
TEXTS_PER_CALL = 64
_WORDS = re.compile(r"\w+|[^\w\s]")
_SPECIAL_TOKENS = 2  # [CLS] and [SEP]
_CHARS_PER_PIECE = 6


@dataclass
class _Embedded:
    model: str = ""
    dimension: int = 0
    max_tokens: int = 0
    vectors: list[list[float]] = field(default_factory=list)
    truncated: set[int] = field(default_factory=set)


async def create_embeddings(
    body: EmbeddingRequest, backend: Backend, catalog: ModelCatalog, ctx: CallContext
) -> EmbeddingList:
    texts = _texts_of(body.input)
    catalog.expect("embedder", body.model)
    embedded = await backend.run(_embed, backend.client(EmbedderClient), texts, ctx)
    catalog.confirm("embedder", body.model, embedded.model)
    if body.dimensions is not None and body.dimensions != embedded.dimension:
        raise OpenAIError(
            400,
            f"{embedded.model} embeds in {embedded.dimension} dimensions; 'dimensions' can only be that",
            param="dimensions",
        )
    tokens = sum(estimated_tokens(text, i in embedded.truncated, embedded.max_tokens) for i, text in enumerate(texts))
    return EmbeddingList(
        data=[
            Embedding(index=i, embedding=_encoded(vector, body.encoding_format), truncated=i in embedded.truncated)
            for i, vector in enumerate(embedded.vectors)
        ],
        model=embedded.model,
        usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens, estimated=True),
    )


def _texts_of(value: str | list) -> list[str]:
    texts = [value] if isinstance(value, str) else value
    if not texts:
        raise OpenAIError(400, "'input' must not be empty: send a text or a list of texts", param="input")
    if not all(isinstance(text, str) for text in texts):
        raise unsupported("input", "token arrays; send the texts (this embedder's tokenizer is not OpenAI's)")
    if len(texts) > MAX_EMBEDDING_INPUTS:
        raise OpenAIError(
            400, f"'input' has {len(texts)} texts; at most {MAX_EMBEDDING_INPUTS} per request", param="input"
        )
    return texts


def _embed(client: EmbedderClient, texts: list[str], ctx: CallContext) -> _Embedded:
    embedded = _Embedded()
    for start in range(0, len(texts), TEXTS_PER_CALL):
        reply = client.embed(texts[start : start + TEXTS_PER_CALL], ctx, normalize=True)
        embedded.model, embedded.dimension, embedded.max_tokens = reply.model, reply.dimension, reply.max_tokens
        embedded.vectors.extend(list(vector.values) for vector in reply.vectors)
        embedded.truncated.update(start + i for i in reply.truncated)
    return embedded


def _encoded(vector: list[float], encoding_format: str) -> list[float] | str:
    if encoding_format == "base64":
        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
    return vector


def estimated_tokens(text: str, truncated: bool, window: int) -> int:
    """An approximation of the embedder's token count (see the module's docstring)."""
    if truncated and window:
        return window
    pieces = sum(math.ceil(len(word) / _CHARS_PER_PIECE) for word in _WORDS.findall(text)) + _SPECIAL_TOKENS
    return min(pieces, window) if window else pieces
