"""A GGUF checkpoint's dequantized weights kept as an ordinary checkpoint
(safetensors, config, generation config, tokenizer) in a cache folder.

transformers dequantizes a GGUF file on every load: about 19 s for the bundled
135M model on two CPU cores, paid again at every restart, preload after an idle
unload, or new replica. The copy holds the same tensors and loads in well under a
second. It is keyed by the GGUF file's content (sha256), so a changed file is
converted again, and written to a temporary folder that is renamed into place
only when complete, so a reader never sees half a copy and two processes
converting at once both end with a whole one. The cache is best effort: a
folder that cannot be written leaves the service loading from the GGUF file."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
COMPLETE = "complete"  # written last: a folder without it is a copy that was cut short


def default_cache_dir() -> Path:
    """Beside the other model caches of this user (like Hugging Face's)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "aiworker" / "gguf"


def gguf_digest(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def cached_copy(cache_dir: Path, gguf_path: Path) -> tuple[Path, bool]:
    """The folder of this file's copy, and whether it is complete."""
    folder = cache_dir / f"{gguf_path.stem}-{gguf_digest(gguf_path)[:16]}"
    return folder, (folder / COMPLETE).is_file()


def store_copy(folder: Path, model: Any, tokenizer: Any) -> bool:
    """Saves the loaded model and tokenizer as the copy at `folder`; False (logged) when
    it cannot be written."""
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
        # transformers refuses to save a model loaded from GGUF (its quantizer marks it so),
        # although the weights it holds are already dequantized: save them as they are.
        quantizer, model.hf_quantizer = getattr(model, "hf_quantizer", None), None
        try:
            model.save_pretrained(staging)
        finally:
            model.hf_quantizer = quantizer
        tokenizer.save_pretrained(staging)
        (staging / COMPLETE).write_text("ok\n")
        if folder.is_dir() and not (folder / COMPLETE).is_file():  # a copy cut short by hand: replace it
            shutil.rmtree(folder, ignore_errors=True)
        try:
            staging.rename(folder)
        except OSError:  # another process put its copy there first: keep that one
            shutil.rmtree(staging, ignore_errors=True)
        return True
    except Exception as exc:  # noqa: BLE001 - best effort: the model is loaded and serves either way
        log.warning("gguf_cache_not_written", extra={"folder": str(folder), "error": str(exc)})
        return False
