"""POST /v1/audio/transcriptions → svc-stt's Recognize, answered as json,
text, verbose_json (with segments), srt or vtt."""

from __future__ import annotations

from fastapi import Response
from fastapi.responses import JSONResponse, PlainTextResponse

from aiworker.stt.v1 import stt_pb2
from gateway.openai.backend import Backend
from gateway.openai.models import ModelCatalog
from gateway.openai.schemas import Transcription, TranscriptionForm, TranscriptionSegment, TranscriptionVerbose
from orchestrator.clients import CallContext, SttClient

STT_TIMEOUT_SECONDS = 600.0  # the service takes up to 15 minutes of audio (about 40 s of work on a CPU)


async def transcribe(
    form: TranscriptionForm, audio: bytes, backend: Backend, catalog: ModelCatalog, ctx: CallContext
) -> Response:
    catalog.expect("stt", form.model)
    client = backend.client(SttClient)
    reply = await backend.run(client.recognize, audio, ctx, language=form.language, prompt=form.prompt)
    catalog.confirm("stt", form.model, reply.model)
    return render(reply, form.response_format)


def render(reply: stt_pb2.RecognizeResponse, response_format: str) -> Response:
    if response_format == "text":
        return PlainTextResponse(reply.text + "\n")
    if response_format == "srt":
        return PlainTextResponse(srt(reply.segments))
    if response_format == "vtt":
        return PlainTextResponse(vtt(reply.segments), media_type="text/vtt")
    if response_format == "verbose_json":
        verbose = TranscriptionVerbose(
            language=reply.language,
            duration=round(reply.duration_s, 3),
            text=reply.text,
            segments=[
                TranscriptionSegment(id=i, start=round(s.start, 3), end=round(s.end, 3), text=s.text)
                for i, s in enumerate(reply.segments)
            ],
        )
        return JSONResponse(verbose.model_dump())
    return JSONResponse(Transcription(text=reply.text).model_dump())


def srt(segments: list[stt_pb2.Segment]) -> str:
    return "".join(
        f"{i}\n{_timestamp(s.start, ',')} --> {_timestamp(s.end, ',')}\n{s.text.strip()}\n\n"
        for i, s in enumerate(segments, start=1)
    )


def vtt(segments: list[stt_pb2.Segment]) -> str:
    cues = "".join(f"{_timestamp(s.start, '.')} --> {_timestamp(s.end, '.')}\n{s.text.strip()}\n\n" for s in segments)
    return "WEBVTT\n\n" + cues


def _timestamp(seconds: float, decimal_mark: str) -> str:
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal_mark}{millis:03d}"
