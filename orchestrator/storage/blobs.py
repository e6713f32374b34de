"""The content-addressed blob store: large inputs (PDFs, audio) and large
intermediate results (vectors, page texts, chunks) are stored once, keyed by
their SHA-256, and passed between stages as a short reference
(`blob:sha256:<hex>`), never inside broker messages.

Two backends behind one interface, chosen by AIWORKER_BLOB_URL:
- a folder (one machine, or a volume every process mounts);
- `s3://bucket/prefix` on any S3-compatible store (AWS S3, SeaweedFS, MinIO, Ceph),
  through boto3: AWS's own SDK, which speaks to any S3 endpoint, streams multipart
  uploads and reads its credentials the standard way (env, profile, pod role).

Write-once: a blob already there is not written again (only marked as used, so
retention by age keeps it). A blob that is not there is an input error (the
stage fails at once); a store that cannot be reached is retryable (the stage
retries with backoff)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import numpy as np

from orchestrator.errors import InvalidInput, RetryableServiceError

PREFIX = "blob:sha256:"
_REF = re.compile(r"^blob:sha256:([0-9a-f]{64})$")
CHUNK_BYTES = 1024 * 1024
TOUCH_AFTER_SECONDS = 24 * 3600  # a reused blob's age is reset at most this often


class StoreUnavailable(RetryableServiceError):
    """The blob store could not be reached or answered with a server error: retried."""


def digest_of(ref: str) -> str:
    match = _REF.match(ref or "")
    if not match:
        raise InvalidInput(f"not a blob reference: {ref!r} (expected {PREFIX}<64 hex>)")
    return match.group(1)


class Backend(Protocol):
    def exists(self, digest: str) -> bool: ...
    def touch(self, digest: str) -> None: ...
    def write(self, digest: str, source: BinaryIO, size: int) -> None: ...
    def read(self, digest: str) -> bytes: ...
    def remove_older_than(self, cutoff: float) -> int: ...


class BlobStore:
    """What stages and the gateway use; the backend only moves bytes."""

    def __init__(self, backend: Backend, max_bytes: int) -> None:
        self.backend = backend
        self.max_bytes = max_bytes

    # -- write ----------------------------------------------------------------------
    def put(self, data: bytes) -> str:
        return self.put_file(io.BytesIO(data))

    def put_file(self, source: BinaryIO) -> str:
        """Stores a readable file (read once, in chunks, never whole in memory):
        hashed while it is copied to a local spool file, then written under its digest."""
        with tempfile.SpooledTemporaryFile(max_size=CHUNK_BYTES) as spool:
            hasher, size = hashlib.sha256(), 0
            for chunk in iter(lambda: source.read(CHUNK_BYTES), b""):
                size += len(chunk)
                if size > self.max_bytes:
                    raise InvalidInput(f"blob too large: over {self.max_bytes} bytes")
                hasher.update(chunk)
                spool.write(chunk)
            digest = hasher.hexdigest()
            if self.backend.exists(digest):
                self.backend.touch(digest)  # still in use: keep it past the retention window
            else:
                spool.seek(0)
                self.backend.write(digest, spool, size)
        return f"{PREFIX}{digest}"

    def put_array(self, array: np.ndarray) -> str:
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(array, dtype=np.float32), allow_pickle=False)
        return self.put(buffer.getvalue())

    def put_json(self, value: Any) -> str:
        return self.put(json.dumps(value, ensure_ascii=False).encode())

    # -- read -----------------------------------------------------------------------
    def get(self, ref: str) -> bytes:
        return self.backend.read(digest_of(ref))

    def get_array(self, ref: str) -> np.ndarray:
        return np.load(io.BytesIO(self.get(ref)), allow_pickle=False)

    def get_json(self, ref: str) -> Any:
        return json.loads(self.get(ref))

    def exists(self, ref: str) -> bool:
        return self.backend.exists(digest_of(ref))

    # -- retention --------------------------------------------------------------------
    def cleanup(self, older_than_seconds: float) -> int:
        """Removes blobs not written or reused for `older_than_seconds`."""
        return self.backend.remove_older_than(time.time() - older_than_seconds)


def _missing(digest: str) -> InvalidInput:
    return InvalidInput(f"blob {PREFIX}{digest} not found (expired or never stored)")


class FolderBackend:
    """A folder: `<root>/<first two hex>/<digest>`, written to a temporary file and
    renamed, so readers never see half a blob."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, digest: str) -> Path:
        return self.root / digest[:2] / digest

    def exists(self, digest: str) -> bool:
        return self._path(digest).exists()

    def touch(self, digest: str) -> None:
        try:
            os.utime(self._path(digest))
        except FileNotFoundError:  # removed by a cleanup meanwhile: the next put writes it again
            pass

    def write(self, digest: str, source: BinaryIO, size: int) -> None:
        path = self._path(digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as tmp:
            for chunk in iter(lambda: source.read(CHUNK_BYTES), b""):
                tmp.write(chunk)
        os.replace(tmp.name, path)

    def read(self, digest: str) -> bytes:
        try:
            return self._path(digest).read_bytes()
        except FileNotFoundError:
            raise _missing(digest) from None

    def remove_older_than(self, cutoff: float) -> int:
        removed = 0
        if not self.root.exists():
            return 0
        for path in self.root.glob("??/*"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                pass
        return removed


class S3Backend:
    """`s3://bucket/prefix`: objects `<prefix>/sha256/<first two hex>/<digest>`."""

    def __init__(self, client: Any, bucket: str, prefix: str) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._bucket_seen = False

    def _key(self, digest: str) -> str:
        return "/".join(p for p in (self.prefix, "sha256", digest[:2], digest) if p)

    def _call(self, what: str, fn: Any, **kwargs: Any) -> Any:
        """Calls boto3; a missing object stays a ClientError for the caller, a store that
        cannot be reached or fails on its side becomes StoreUnavailable (retried)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(**kwargs)
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            code = exc.response.get("Error", {}).get("Code", "")
            if status >= 500 or code in ("SlowDown", "RequestTimeout", "ServiceUnavailable", "InternalError"):
                raise StoreUnavailable(f"blob store {what}: {code or status}: {exc}") from None
            raise
        except BotoCoreError as exc:  # connection refused or reset, timeouts, DNS
            raise StoreUnavailable(f"blob store unreachable ({what}): {exc}") from None

    def exists(self, digest: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self._call("HEAD", self.client.head_object, Bucket=self.bucket, Key=self._key(digest))
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise StoreUnavailable(f"blob store HEAD: {exc}") from None

    def touch(self, digest: str) -> None:
        """Resets the object's age (a copy onto itself), at most once a day per blob."""
        key = self._key(digest)
        head = self._call("HEAD", self.client.head_object, Bucket=self.bucket, Key=key)
        if time.time() - head["LastModified"].timestamp() < TOUCH_AFTER_SECONDS:
            return
        self._call(
            "COPY",
            self.client.copy_object,
            Bucket=self.bucket,
            Key=key,
            CopySource={"Bucket": self.bucket, "Key": key},
            MetadataDirective="REPLACE",
        )

    def write(self, digest: str, source: BinaryIO, size: int) -> None:
        if not self._bucket_seen:
            # The first upload of a process makes a missing bucket, so no deployment needs a
            # setup step (SeaweedFS answers a PUT into a missing bucket with AccessDenied).
            self.ensure_bucket()
            self._bucket_seen = True
        self._call("PUT", self.client.upload_fileobj, Fileobj=source, Bucket=self.bucket, Key=self._key(digest))

    def read(self, digest: str) -> bytes:
        from botocore.exceptions import ClientError

        try:
            reply = self._call("GET", self.client.get_object, Bucket=self.bucket, Key=self._key(digest))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                raise _missing(digest) from None
            raise StoreUnavailable(f"blob store GET: {exc}") from None
        return reply["Body"].read()

    def remove_older_than(self, cutoff: float) -> int:
        limit = datetime.fromtimestamp(cutoff, UTC)
        removed = 0
        for batch in self._old_keys(limit):
            self._call(
                "DELETE",
                self.client.delete_objects,
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
            )
            removed += len(batch)
        return removed

    def _old_keys(self, limit: datetime) -> Iterator[list[str]]:
        paginator = self.client.get_paginator("list_objects_v2")
        root = "/".join(p for p in (self.prefix, "sha256") if p) + "/"
        batch: list[str] = []
        from botocore.exceptions import ClientError

        try:
            pages = self._call("LIST", lambda: list(paginator.paginate(Bucket=self.bucket, Prefix=root)))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NoSuchBucket":
                return  # nothing was ever stored
            raise
        for page in pages:
            for item in page.get("Contents", []):
                if item["LastModified"] < limit:
                    batch.append(item["Key"])
                    if len(batch) == 1000:  # DeleteObjects takes 1000 keys at most
                        yield batch
                        batch = []
        if batch:
            yield batch

    def ensure_bucket(self) -> None:
        """Creates the bucket when it is missing. A HEAD refused for want of permission (403)
        leaves it be: the bucket is someone else's to make, and the upload says if it is not."""
        from botocore.exceptions import ClientError

        try:
            self._call("HEAD bucket", self.client.head_bucket, Bucket=self.bucket)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("403", "AccessDenied", "Forbidden"):
                return
            self._call("CREATE bucket", self.client.create_bucket, Bucket=self.bucket)


def s3_client(endpoint_url: str, access_key_id: str, secret_access_key: str, region: str) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=5,
        read_timeout=60,
        retries={"max_attempts": 3, "mode": "standard"},
        s3={"addressing_style": "path"} if endpoint_url else {},  # most non-AWS servers want path style
    )
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint_url or None,
        aws_access_key_id=access_key_id or None,
        aws_secret_access_key=secret_access_key or None,
        region_name=region or None,
        config=config,
    )


def parse_s3_url(url: str) -> tuple[str, str]:
    """s3://bucket/prefix → (bucket, prefix)."""
    rest = url.removeprefix("s3://")
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise ValueError(f"an S3 blob URL names its bucket: s3://bucket/prefix, not {url!r}")
    return bucket, prefix


def blob_store_for(settings: Any) -> BlobStore:
    """The store AIWORKER_BLOB_URL names (a folder path, or s3://bucket/prefix)."""
    if settings.blob_url.startswith("s3://"):
        bucket, prefix = parse_s3_url(settings.blob_url)
        client = s3_client(
            settings.s3_endpoint_url,
            settings.s3_access_key_id,
            settings.s3_secret_access_key.get_secret_value(),
            settings.s3_region,
        )
        return BlobStore(S3Backend(client, bucket, prefix), settings.max_blob_bytes)
    return BlobStore(FolderBackend(Path(settings.blob_url)), settings.max_blob_bytes)
