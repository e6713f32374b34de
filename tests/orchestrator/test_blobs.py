"""The blob store on both backends: a folder, and S3 on a real server (SeaweedFS)."""

from __future__ import annotations

import io
import os
import socket
import time
import uuid

import numpy as np
import pytest

from orchestrator.errors import InvalidInput, RetryableServiceError
from orchestrator.settings import OrchestratorSettings
from orchestrator.storage.blobs import BlobStore, FolderBackend, S3Backend, StoreUnavailable, blob_store_for, s3_client


def s3_store(endpoint: str, max_bytes: int, bucket: str = "aiworker-test") -> BlobStore:
    settings = OrchestratorSettings(
        blob_url=f"s3://{bucket}/run-{uuid.uuid4().hex[:8]}",
        s3_endpoint_url=endpoint,
        s3_access_key_id="test",
        s3_secret_access_key="test",
        s3_region="us-east-1",
        max_blob_bytes=max_bytes,
    )
    store = blob_store_for(settings)
    store.backend.ensure_bucket()
    return store


@pytest.fixture(params=["folder", "s3"])
def make_store(request, tmp_path):
    """A factory of empty stores of each backend."""
    if request.param == "folder":
        return lambda max_bytes: BlobStore(FolderBackend(tmp_path), max_bytes)
    endpoint = request.getfixturevalue("s3_server").endpoint_url
    return lambda max_bytes: s3_store(endpoint, max_bytes)


def test_content_addressed_round_trip(make_store):
    store = make_store(1024)
    ref = store.put(b"hello")
    assert ref == store.put(b"hello")  # same content, same reference, stored once
    assert store.get(ref) == b"hello" and store.exists(ref)


def test_a_file_streams_in_without_being_read_whole(make_store):
    store = make_store(8 << 20)
    data = os.urandom(3 << 20)

    class Chunked(io.BytesIO):
        largest = 0

        def read(self, size=-1):
            assert size != -1, "read whole"
            chunk = super().read(size)
            Chunked.largest = max(Chunked.largest, len(chunk))
            return chunk

    ref = store.put_file(Chunked(data))
    assert store.get(ref) == data and Chunked.largest <= 1 << 20


def test_arrays_and_json(make_store):
    store = make_store(1 << 20)
    vectors = np.random.default_rng(0).random((3, 384), dtype=np.float32)
    np.testing.assert_array_equal(store.get_array(store.put_array(vectors)), vectors)
    assert store.get_json(store.put_json({"a": ["한국어", 1]})) == {"a": ["한국어", 1]}


@pytest.mark.parametrize("ref", ["", "blob:sha256:../../etc/passwd", "/etc/passwd", "blob:sha256:" + "g" * 64])
def test_bad_references_are_refused(tmp_path, ref):
    with pytest.raises(InvalidInput, match="not a blob reference"):
        BlobStore(FolderBackend(tmp_path), 10).get(ref)


def test_missing_and_oversize_are_input_errors(make_store):
    store = make_store(4)
    with pytest.raises(InvalidInput, match="not found"):
        store.get("blob:sha256:" + "a" * 64)
    with pytest.raises(InvalidInput, match="too large"):
        store.put(b"12345")


def test_cleanup_removes_only_old_blobs(tmp_path):
    store = BlobStore(FolderBackend(tmp_path), max_bytes=100)
    old, new = store.put(b"old"), store.put(b"new")
    old_path = next(p for p in tmp_path.glob("??/*") if p.read_bytes() == b"old")
    past = time.time() - 7200
    os.utime(old_path, (past, past))
    assert store.cleanup(older_than_seconds=3600) == 1
    assert store.get(new) == b"new"
    with pytest.raises(InvalidInput):
        store.get(old)


def test_s3_cleanup_removes_only_old_blobs(s3_server):
    store = s3_store(s3_server.endpoint_url, 100)
    old = store.put(b"old")
    time.sleep(2.2)  # S3 keeps LastModified to the second
    new = store.put(b"new")
    assert store.cleanup(older_than_seconds=1.1) == 1
    assert store.get(new) == b"new"
    with pytest.raises(InvalidInput, match="not found"):
        store.get(old)


def test_an_unreachable_s3_store_is_retryable_not_an_input_error():
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = s3_client(f"http://127.0.0.1:{port}", "k", "s", "us-east-1")
    store = BlobStore(S3Backend(client, "aiworker", ""), 100)
    for call in (lambda: store.get("blob:sha256:" + "b" * 64), lambda: store.put(b"x")):
        with pytest.raises(StoreUnavailable, match="unreachable") as caught:
            call()
        assert isinstance(caught.value, RetryableServiceError)


def test_a_bucket_nobody_made_is_made_by_the_first_upload(s3_server):
    """No deployment needs a bucket-creating step: cleanup of a fresh store finds nothing and
    the first upload creates the bucket."""
    settings = OrchestratorSettings(
        blob_url=f"s3://fresh-{uuid.uuid4().hex[:8]}/blobs",
        s3_endpoint_url=s3_server.endpoint_url,
        s3_access_key_id="test",
        s3_secret_access_key="test",
        s3_region="us-east-1",
    )
    store = blob_store_for(settings)
    assert store.cleanup(0) == 0
    ref = store.put(b"first")
    assert store.get(ref) == b"first"
