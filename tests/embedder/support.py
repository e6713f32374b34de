"""Helpers of the embedder tests: calls, vectors, the batch-size histogram."""

from __future__ import annotations

import urllib.request

import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from aiworker.embedder.v1 import embedder_pb2

TOLERANCE = 1e-5


def embed(stub, texts, normalize=False, timeout=60, **kwargs) -> embedder_pb2.EmbedResponse:
    return stub.Embed(embedder_pb2.EmbedRequest(texts=texts, normalize=normalize), timeout=timeout, **kwargs)


def vectors(reply: embedder_pb2.EmbedResponse) -> np.ndarray:
    return np.array([list(v.values) for v in reply.vectors], dtype=np.float32)


def assert_close(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape, (got.shape, want.shape)
    worst = float(np.abs(got - want).max())
    assert worst <= TOLERANCE, f"largest difference {worst:.2e} > {TOLERANCE:.0e}"


def batch_size_histogram(metrics_port: int) -> dict[str, float]:
    """{'count': batches, 'sum': texts, 'le_1': batches of one text} from /metrics."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
    out = {"count": 0.0, "sum": 0.0, "le_1": 0.0}
    for family in text_string_to_metric_families(text):
        if family.name != "aiworker_embedder_batch_size":
            continue
        for sample in family.samples:
            if sample.name.endswith("_count"):
                out["count"] = sample.value
            elif sample.name.endswith("_sum"):
                out["sum"] = sample.value
            elif sample.name.endswith("_bucket") and float(sample.labels["le"]) == 1.0:
                out["le_1"] = sample.value
    return out
