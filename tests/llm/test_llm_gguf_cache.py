"""A GGUF model's dequantized copy (svc_llm/gguf_cache.py): the first load writes it,
later loads read it instead of dequantizing the file again, and generate exactly
what the GGUF file does (in-process, on the bundled model); a copy cut short is
replaced, a copy already there is kept, and a cache that cannot be written is
reported, not raised (on a tiny random Llama)."""

from __future__ import annotations

from pathlib import Path

import pytest

from svc_llm.gguf_cache import COMPLETE, cached_copy, store_copy
from svc_llm.model import ChatMessage, LlmEngine
from svc_llm.sequence import GenerationParams, TextDelta
from svc_llm.servicer import engine_config
from svc_llm.settings import LlmSettings

pytestmark = pytest.mark.slow  # loads the real model, twice
PROMPT = [ChatMessage("user", "Name three colours.")]


def engine(cache_dir: str) -> LlmEngine:
    return LlmEngine(engine_config(LlmSettings(device="cpu", gguf_cache_dir=cache_dir)), "cpu")


def greedy(llm: LlmEngine) -> str:
    params = GenerationParams(max_new_tokens=24)
    return "".join(e.text for e in llm.generate(PROMPT, params) if isinstance(e, TextDelta))


@pytest.fixture(scope="module")
def from_the_file(tmp_path_factory) -> tuple[Path, str]:
    """The cache folder after one load from the GGUF file, and what that model generated."""
    cache = tmp_path_factory.mktemp("gguf-cache")
    llm = engine(str(cache))
    text = greedy(llm)
    llm.close()
    return cache, text


def test_the_first_load_writes_a_whole_copy(from_the_file):
    cache, _ = from_the_file
    (copy,) = cache.iterdir()
    assert (copy / COMPLETE).is_file() and (copy / "model.safetensors").is_file()
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # no staging folder left


def test_a_later_load_reads_the_copy_and_generates_the_same(from_the_file):
    cache, text = from_the_file
    llm = engine(str(cache))
    assert llm._gguf_copy()[1], "the copy should be there to load"
    assert greedy(llm) == text
    llm.close()


class _Tokenizer:
    def save_pretrained(self, folder: Path) -> None:
        (Path(folder) / "tokenizer.json").write_text("{}")


@pytest.fixture(scope="module")
def tiny_model():
    """A random two-layer Llama: the copy's file handling, without the bundled model's load."""
    from transformers import LlamaConfig, LlamaForCausalLM

    return LlamaForCausalLM(
        LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2)
    )


def test_a_copy_cut_short_is_replaced_by_a_whole_one(tmp_path, tiny_model):
    folder = tmp_path / "model-0123"
    folder.mkdir()
    (folder / "config.json").write_text("{}")  # no COMPLETE: a write cut short
    assert store_copy(folder, tiny_model, _Tokenizer())
    assert (folder / COMPLETE).is_file() and (folder / "model.safetensors").is_file()


def test_a_copy_already_there_is_kept_and_no_staging_folder_is_left(tmp_path, tiny_model):
    folder = tmp_path / "model-0123"
    assert store_copy(folder, tiny_model, _Tokenizer())
    first = (folder / "model.safetensors").stat().st_mtime_ns
    assert store_copy(folder, tiny_model, _Tokenizer())  # a second process converting at the same time
    assert (folder / "model.safetensors").stat().st_mtime_ns == first
    assert [p.name for p in tmp_path.iterdir()] == ["model-0123"]


def test_a_cache_that_cannot_be_written_is_reported_not_raised(tmp_path, tiny_model):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert store_copy(blocker / "cache" / "model-0123", tiny_model, _Tokenizer()) is False


def test_a_changed_file_has_another_copy(tmp_path):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"one")
    first, _ = cached_copy(tmp_path / "cache", gguf)
    gguf.write_bytes(b"two")
    assert cached_copy(tmp_path / "cache", gguf)[0] != first


def test_off_turns_the_cache_off():
    assert engine_config(LlmSettings(device="cpu", gguf_cache_dir="off")).gguf_cache_dir == ""
