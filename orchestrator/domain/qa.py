"""Grounded answers: the prompt that hands the LLM numbered excerpts, and the
citations read back from its answer. Pure functions (orchestrator/pipelines/tasks/document_qa.py
does the calls)."""

from __future__ import annotations

import re
from typing import Any

EXCERPT_CHARS = 700  # per excerpt in the prompt: a small model's context is short
_MARK = re.compile(r"\[(\d{1,2})\]")


def qa_messages(question: str, excerpts: list[dict[str, Any]]) -> list[dict[str, str]]:
    numbered = "\n".join(
        f"[{n}] ({e.get('filename') or e.get('title') or 'document'}, page {e.get('page', 0)}): "
        f"{' '.join(e['text'].split())[:EXCERPT_CHARS]}"
        for n, e in enumerate(excerpts, start=1)
    )
    return [
        {
            "role": "user",
            "content": "Answer the question using only these excerpts. Cite the excerpts you use like [1]. "
            "If they do not contain the answer, say so.\n"
            f"Excerpts:\n{numbered}\n\nQuestion: {question}\nAnswer:",
        }
    ]


def citations(answer: str, excerpts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The excerpts the answer cites ([n]); when it cites none, every excerpt it was given,
    marked as not cited (the answer still rests on them)."""
    cited = {int(n) for n in _MARK.findall(answer) if 1 <= int(n) <= len(excerpts)}
    return [
        {
            "n": n,
            "document_id": e["document_id"],
            "filename": e.get("filename", ""),
            "title": e.get("title", ""),
            "page": e.get("page", 0),
            "chunk_index": e["chunk_index"],
            "score": e.get("score"),
            "cited": n in cited,
        }
        for n, e in enumerate(excerpts, start=1)
        if n in cited or not cited
    ]
