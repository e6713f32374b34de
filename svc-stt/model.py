"""Speech recognition with faster-whisper (CTranslate2). Knows nothing of gRPC:
raises domain errors with a message that says what is wrong with the request."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from svc_runtime.errors import InvalidArgument, StartupError
from svc_stt.audio import SAMPLE_RATE, decode_audio, wav_bytes
from svc_stt.bundled import resolve_model
from svc_stt.context import ContextLimits, SpeechContext, check_context

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecognizerConfig:
    """What the recognizer needs of the service's settings, as plain values (the
    servicer builds it from SttSettings), so this module imports without pydantic."""

    model: str  # 'bundled', a CTranslate2 model dir, a size name or a hub id
    compute_type: str  # auto or a CTranslate2 compute type
    beam_size: int
    cpu_threads: int  # per transcription (0 = every CPU the process may use)
    max_concurrent: int  # transcriptions at once (CTranslate2 workers)
    max_audio_bytes: int
    max_audio_seconds: float
    vad_filter: bool
    allow_download: bool  # size names and hub ids may download
    context: ContextLimits


class TranscriptionCancelled(Exception):
    """The caller went away; the rest of the audio was not transcribed."""


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    text: str


@dataclass
class Transcript:
    text: str
    language: str
    duration_s: float
    model: str
    segments: list[Segment] = field(default_factory=list)
    seconds_taken: float = 0.0
    context_used: bool = False

    @property
    def real_time_factor(self) -> float:
        return self.seconds_taken / self.duration_s if self.duration_s else 0.0


def resolve_compute_type(requested: str, device: str) -> str:
    kind = "cuda" if device.startswith("cuda") else "cpu"
    compute_type = requested.strip().lower()
    if compute_type == "auto":
        compute_type = "float16" if kind == "cuda" else "int8"
    import ctranslate2

    supported = ctranslate2.get_supported_compute_types(kind)
    if compute_type not in supported:
        raise StartupError(
            f"compute type {compute_type!r} is not supported on {kind} (supported here: {', '.join(sorted(supported))})"
        )
    return compute_type


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class SpeechRecognizer:
    def __init__(self, config: RecognizerConfig, device: str) -> None:
        self.config = config
        self.device = device
        self.model_source, self.model_name = resolve_model(config.model)
        self.compute_type = resolve_compute_type(config.compute_type, device)
        self.cpu_threads = config.cpu_threads or _cpu_count()
        self._model: WhisperModel | None = None
        self._load_lock = threading.Lock()

    # -- loading ---------------------------------------------------------------

    def load(self) -> None:
        with self._load_lock:
            if self._model is not None:
                return
            from faster_whisper import WhisperModel

            kind, _, index = self.device.partition(":")
            started = time.perf_counter()
            try:
                self._model = WhisperModel(
                    self.model_source,
                    device=kind,
                    device_index=int(index or 0),
                    compute_type=self.compute_type,
                    cpu_threads=self.cpu_threads,
                    num_workers=self.config.max_concurrent,
                    local_files_only=not self.config.allow_download,
                )
            except Exception as exc:
                hint = (
                    ""
                    if self.config.allow_download or Path(self.model_source).is_dir()
                    else " (size names and hub ids load from the local Hugging Face cache unless --allow-download)"
                )
                raise StartupError(
                    f"cannot load Whisper model {self.config.model!r} ({self.model_source}): {exc}{hint}"
                ) from exc
            log.info(
                "model_loaded",
                extra={
                    "model": self.model_name,
                    "source": self.model_source,
                    "device": self.device,
                    "compute_type": self.compute_type,
                    "cpu_threads": self.cpu_threads,
                    "multilingual": self._model.model.is_multilingual,
                    "seconds": round(time.perf_counter() - started, 2),
                },
            )

    def warm_up(self) -> Transcript:
        """A second of quiet noise through the whole path: decoding, features,
        encoder, decoder. (Not a tone: Whisper hallucinates on one and retries at
        every fallback temperature, ~20x slower.)"""
        noise = np.random.default_rng(0).standard_normal(SAMPLE_RATE) * 0.01
        return self.transcribe(wav_bytes(noise))

    @property
    def model(self) -> WhisperModel:
        if self._model is None:
            raise RuntimeError("SpeechRecognizer.load() was not called")
        return self._model

    # -- one request -----------------------------------------------------------

    def check_language(self, language: str) -> str | None:
        """The hint as faster-whisper wants it (None = detect). An English-only
        model given another language is refused: it would return English-looking
        nonsense for, say, Korean speech, which is worse than a clear error."""
        code = language.strip().lower().replace("_", "-").split("-")[0]
        if not code:
            return None
        supported = self.model.supported_languages
        if code in supported:
            return code
        if supported == ["en"]:
            raise InvalidArgument(
                f"language {language!r} is not supported: model {self.model_name} is English-only; "
                "send 'en' or leave the language empty"
            )
        raise InvalidArgument(
            f"unknown language {language!r}: expected an ISO 639-1 code such as "
            f"'en' or 'ko' that model {self.model_name} knows"
        )

    def check_context(self, prompt: str = "", hotwords: Sequence[str] = ()) -> SpeechContext:
        return check_context(prompt, hotwords, self.config.context)

    def decode(self, data: bytes) -> np.ndarray:
        return decode_audio(data, self.config.max_audio_bytes, self.config.max_audio_seconds)

    def transcribe(self, data: bytes, language: str = "", prompt: str = "", hotwords: Sequence[str] = ()) -> Transcript:
        hint = self.check_language(language)
        context = self.check_context(prompt, hotwords)
        return self.transcribe_samples(self.decode(data), hint, context=context)

    def transcribe_samples(
        self,
        audio: np.ndarray,
        language: str | None = None,
        cancelled: threading.Event | None = None,
        context: SpeechContext | None = None,
        on_segment: Callable[[Segment], None] | None = None,
    ) -> Transcript:
        """`on_segment` is called (in this thread) with each segment once it is transcribed."""
        started = time.perf_counter()
        duration = audio.size / SAMPLE_RATE
        context = context or SpeechContext()
        pieces, info = self.model.transcribe(
            audio,
            language=language,
            beam_size=self.config.beam_size,
            vad_filter=self.config.vad_filter,
            **context.transcribe_options(),
        )
        segments: list[Segment] = []
        # The generator does the work: consume it here so its errors are this call's errors.
        for piece in pieces:
            if cancelled is not None and cancelled.is_set():
                raise TranscriptionCancelled(f"cancelled after {piece.end:.1f} s of {duration:.1f} s")
            text = piece.text.strip()
            if not text:
                continue
            # Whisper may put the last timestamp past the end of the audio.
            end = min(max(piece.end, 0.0), duration)
            segments.append(Segment(start=min(max(piece.start, 0.0), end), end=end, text=text))
            if on_segment is not None:
                on_segment(segments[-1])
        return Transcript(
            text=" ".join(s.text for s in segments),
            language=info.language,
            duration_s=duration,
            model=self.model_name,
            segments=segments,
            seconds_taken=time.perf_counter() - started,
            context_used=bool(context),
        )
