import os
import time

import numpy as np
import pytest

from orchestrator.blobs import BlobStore
from orchestrator.errors import InvalidInput


def test_content_addressed_round_trip(tmp_path):
    store = BlobStore(tmp_path, max_bytes=1024)
    ref = store.put(b"hello")
    assert ref == store.put(b"hello")  # same content, same reference, stored once
    assert store.get(ref) == b"hello"
    assert len(list(tmp_path.glob("??/*"))) == 1


def test_arrays_and_json(tmp_path):
    store = BlobStore(tmp_path, max_bytes=1 << 20)
    vectors = np.random.default_rng(0).random((3, 384), dtype=np.float32)
    np.testing.assert_array_equal(store.get_array(store.put_array(vectors)), vectors)
    assert store.get_json(store.put_json({"a": ["한국어", 1]})) == {"a": ["한국어", 1]}


@pytest.mark.parametrize("ref", ["", "blob:sha256:../../etc/passwd", "/etc/passwd", "blob:sha256:" + "g" * 64])
def test_bad_references_are_refused(tmp_path, ref):
    with pytest.raises(InvalidInput, match="not a blob reference"):
        BlobStore(tmp_path, 10).get(ref)


def test_missing_and_oversize(tmp_path):
    store = BlobStore(tmp_path, max_bytes=4)
    with pytest.raises(InvalidInput, match="not found"):
        store.get("blob:sha256:" + "a" * 64)
    with pytest.raises(InvalidInput, match="too large"):
        store.put(b"12345")


def test_cleanup_removes_only_old_blobs(tmp_path):
    store = BlobStore(tmp_path, max_bytes=100)
    old, new = store.put(b"old"), store.put(b"new")
    old_path = next(p for p in tmp_path.glob("??/*") if p.read_bytes() == b"old")
    past = time.time() - 7200
    os.utime(old_path, (past, past))
    assert store.cleanup(older_than_seconds=3600) == 1
    assert store.get(new) == b"new"
    with pytest.raises(InvalidInput):
        store.get(old)
