"""Content-addressed blob store on a shared folder: large inputs (PDFs, audio)
and large intermediate results (vectors) are stored once and passed between
stages as a short reference, never inside broker messages."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from orchestrator.errors import InvalidInput

_REF = re.compile(r"^blob:sha256:([0-9a-f]{64})$")


class BlobStore:
    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes

    def _path(self, digest: str) -> Path:
        return self.root / digest[:2] / digest

    def put(self, data: bytes) -> str:
        if len(data) > self.max_bytes:
            raise InvalidInput(f"blob too large: {len(data)} bytes, the limit is {self.max_bytes}")
        digest = hashlib.sha256(data).hexdigest()
        path = self._path(digest)
        if path.exists():
            os.utime(path)  # still in use: keep it past the retention window
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Write then rename: readers never see a half-written blob.
            with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as tmp:
                tmp.write(data)
            os.replace(tmp.name, path)
        return f"blob:sha256:{digest}"

    def get(self, ref: str) -> bytes:
        match = _REF.match(ref or "")
        if not match:
            raise InvalidInput(f"not a blob reference: {ref!r} (expected blob:sha256:<64 hex>)")
        try:
            return self._path(match.group(1)).read_bytes()
        except FileNotFoundError:
            raise InvalidInput(f"blob {ref} not found (expired or never stored)") from None

    def put_array(self, array: np.ndarray) -> str:
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(array, dtype=np.float32), allow_pickle=False)
        return self.put(buffer.getvalue())

    def get_array(self, ref: str) -> np.ndarray:
        return np.load(io.BytesIO(self.get(ref)), allow_pickle=False)

    def put_json(self, value: Any) -> str:
        return self.put(json.dumps(value, ensure_ascii=False).encode())

    def get_json(self, ref: str) -> Any:
        return json.loads(self.get(ref))

    def cleanup(self, older_than_seconds: float) -> int:
        """Removes blobs not written or reused for `older_than_seconds`."""
        cutoff = time.time() - older_than_seconds
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
