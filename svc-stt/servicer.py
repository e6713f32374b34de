"""Maps aiworker.stt.v1 ↔ SpeechRecognizer."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import grpc
import numpy as np

from aiworker.stt.v1 import stt_pb2, stt_pb2_grpc
from svc_runtime.device import resolve_device
from svc_runtime.logs import get_logger
from svc_runtime.server import ServicerBase
from svc_stt.audio import SAMPLE_RATE
from svc_stt.context import ContextLimits, SpeechContext
from svc_stt.model import RecognizerConfig, Segment, SpeechRecognizer, Transcript, TranscriptionCancelled
from svc_stt.settings import SttSettings

log = get_logger(__name__)

AUDIO_SECONDS_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 900, 1800, 3600)
RTF_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 5)


def _ctranslate2_cuda_devices() -> int:
    """CTranslate2's own probe: an STT-only host need not have torch."""
    import ctranslate2

    return ctranslate2.get_cuda_device_count()


def recognizer_config(settings: SttSettings) -> RecognizerConfig:
    """The recognizer's plain values, from the service's settings."""
    return RecognizerConfig(
        model=settings.model,
        compute_type=settings.compute_type,
        beam_size=settings.beam_size,
        cpu_threads=settings.cpu_threads,
        max_concurrent=settings.max_concurrent,
        max_audio_bytes=settings.max_audio_bytes,
        max_audio_seconds=settings.max_audio_seconds,
        vad_filter=settings.vad_filter,
        allow_download=settings.allow_download,
        context=ContextLimits(
            max_prompt_chars=settings.max_prompt_chars,
            max_hotwords=settings.max_hotwords,
            max_hotwords_chars=settings.max_hotwords_chars,
        ),
    )


class SttServicer(ServicerBase, stt_pb2_grpc.SttServicer):
    service_name = stt_pb2.DESCRIPTOR.services_by_name["Stt"].full_name

    def __init__(self, settings: SttSettings) -> None:
        self.device = resolve_device(settings.device, cuda_device_count=_ctranslate2_cuda_devices)
        self.recognizer = SpeechRecognizer(recognizer_config(settings), self.device)
        # CTranslate2 already spreads one transcription over every core: more at
        # once only share them, so callers beyond the bound wait their turn here.
        self._slots = asyncio.Semaphore(settings.max_concurrent)

    def register(self, server: grpc.aio.Server) -> None:
        stt_pb2_grpc.add_SttServicer_to_server(self, server)

    async def startup(self) -> None:
        self._audio_seconds = self.metrics.histogram(
            "aiworker_stt_audio_seconds", "length of the audio transcribed", AUDIO_SECONDS_BUCKETS
        )
        self._rtf = self.metrics.histogram(
            "aiworker_stt_real_time_factor", "processing seconds per audio second", RTF_BUCKETS
        )
        await asyncio.to_thread(self.recognizer.load)
        warm = await asyncio.to_thread(self.recognizer.warm_up)
        log.info("model_warmed", model=warm.model, seconds=round(warm.seconds_taken, 2))

    async def Recognize(self, request: stt_pb2.RecognizeRequest, context: grpc.aio.ServicerContext):
        audio, language, speech_context = await self._checked(request)
        transcript = await self._transcribe_in_slot(audio, language, speech_context)
        self._observe(transcript)
        return _response(transcript)

    async def RecognizeStream(self, request: stt_pb2.RecognizeRequest, context: grpc.aio.ServicerContext):
        audio, language, speech_context = await self._checked(request)
        duration = audio.size / SAMPLE_RATE
        loop = asyncio.get_running_loop()
        segments: asyncio.Queue[Segment | None] = asyncio.Queue()
        work = asyncio.ensure_future(
            self._transcribe_in_slot(
                audio, language, speech_context, lambda s: loop.call_soon_threadsafe(segments.put_nowait, s)
            )
        )
        # The thread's segments reach the loop before its result does (both in call order), so
        # this end mark comes after the last segment.
        work.add_done_callback(lambda _: segments.put_nowait(None))
        try:
            while (segment := await segments.get()) is not None:
                yield stt_pb2.RecognizeStreamResponse(
                    segment=stt_pb2.SegmentDone(segment=_segment(segment), duration_s=duration)
                )
            transcript = work.result()
        finally:
            work.cancel()  # the caller went away: the transcription stops at its next segment
        self._observe(transcript)
        yield stt_pb2.RecognizeStreamResponse(done=_response(transcript))

    async def _checked(self, request: stt_pb2.RecognizeRequest) -> tuple[np.ndarray, str | None, SpeechContext]:
        language = self.recognizer.check_language(request.language)
        speech_context = self.recognizer.check_context(request.context.prompt, request.context.hotwords)
        # Decoding runs outside the bound: a bad file is refused without queueing.
        audio = await asyncio.to_thread(self.recognizer.decode, request.audio)
        return audio, language, speech_context

    async def _transcribe_in_slot(
        self,
        audio: np.ndarray,
        language: str | None,
        speech_context: SpeechContext,
        on_segment: Callable[[Segment], None] | None = None,
    ) -> Transcript:
        """Runs in a worker thread holding a slot until the thread is done, even
        when the caller goes away (cancel, deadline): the thread then stops at
        its next segment, and only then may another transcription start."""
        cancelled = threading.Event()
        await self._slots.acquire()
        work = asyncio.ensure_future(
            asyncio.to_thread(
                self.recognizer.transcribe_samples, audio, language, cancelled, speech_context, on_segment
            )
        )
        work.add_done_callback(self._free_slot)
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    def _free_slot(self, work: asyncio.Future) -> None:
        self._slots.release()
        if not work.cancelled() and isinstance(work.exception(), TranscriptionCancelled):
            log.info("transcription_stopped", reason="caller_gone", detail=str(work.exception()))

    def _observe(self, transcript: Transcript) -> None:
        service = self.metrics.service
        self._audio_seconds.labels(service).observe(transcript.duration_s)
        self._rtf.labels(service).observe(transcript.real_time_factor)
        log.info(
            "audio_transcribed",
            audio_seconds=round(transcript.duration_s, 2),
            real_time_factor=round(transcript.real_time_factor, 3),
            segments=len(transcript.segments),
            language=transcript.language,
            context_used=transcript.context_used,
        )


def _segment(segment: Segment) -> stt_pb2.Segment:
    return stt_pb2.Segment(start=segment.start, end=segment.end, text=segment.text)


def _response(transcript: Transcript) -> stt_pb2.RecognizeResponse:
    return stt_pb2.RecognizeResponse(
        text=transcript.text,
        segments=[_segment(s) for s in transcript.segments],
        language=transcript.language,
        duration_s=transcript.duration_s,
        model=transcript.model,
        context_used=transcript.context_used,
    )
