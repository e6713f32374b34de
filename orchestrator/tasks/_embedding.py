"""Embedding many chunk texts through the embedder in bounded calls."""

from __future__ import annotations

import numpy as np

from orchestrator.stage import StageTask

EMBED_CALL_SIZE = 64  # texts per Embed call; the service batches across callers


def embed_texts(task: StageTask, texts: list[str], progress_from: int = 10, progress_to: int = 90
                ) -> tuple[np.ndarray, str]:
    vectors: list[np.ndarray] = []
    model = ""
    client = task.resources.embedder()
    for start in range(0, len(texts), EMBED_CALL_SIZE):
        reply = client.embed(texts[start:start + EMBED_CALL_SIZE], task.rpc(), normalize=True)
        model = reply.model
        vectors.extend(np.asarray(v.values, dtype=np.float32) for v in reply.vectors)
        done = min(start + EMBED_CALL_SIZE, len(texts))
        task.report("PROGRESS", progress_from + (progress_to - progress_from) * done // len(texts),
                    f"embedded {done}/{len(texts)} chunks")
    return np.stack(vectors), model
