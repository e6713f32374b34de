"""Every bad input is INVALID_ARGUMENT with a message that says what is wrong,
and the service answers the next caller."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from aiworker.stt.v1 import stt_pb2, stt_pb2_grpc
from aiworker_local.services import start_service
from bench.eval.audio import Speech, reencode, silence, wav_seconds, word_error_rate
from svc_stt.audio import wav_bytes

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 100


def recognize(stub, audio: bytes, context: stt_pb2.SpeechContext | None = None) -> stt_pb2.RecognizeResponse:
    return stub.Recognize(stt_pb2.RecognizeRequest(audio=audio, context=context), timeout=120)


def assert_invalid(stub, audio: bytes, *message_parts: str, context: stt_pb2.SpeechContext | None = None) -> None:
    with pytest.raises(grpc.RpcError) as err:
        recognize(stub, audio, context)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, err.value.details()
    for part in message_parts:
        assert part in err.value.details()


def assert_still_answers(stub, service, short_speech: Speech) -> None:
    assert service.process.alive()
    reply = recognize(stub, short_speech.wav)
    assert word_error_rate(short_speech.text, reply.text) <= 0.5, reply.text


@pytest.mark.parametrize(
    ("make_audio", "message"),
    [
        (lambda wav: b"", "empty audio"),
        (lambda wav: np.random.default_rng(7).bytes(64 * 1024), "not audio"),
        (lambda wav: b"Dear hiring manager,\nplease find my answer attached.\n" * 40, "not audio"),
        (lambda wav: wav[:30], "not audio"),
        (lambda wav: wav_bytes(np.zeros(0)), "zero-length audio"),
        (lambda wav: PNG, "no audio stream"),
    ],
    ids=["empty", "random-bytes", "text-file", "truncated-header", "zero-length-wav", "image"],
)
def test_bad_input_is_invalid_argument(stt_stub, stt_service, speech, short_speech, make_audio, message):
    assert_invalid(stt_stub, make_audio(speech.wav), message)
    assert_still_answers(stt_stub, stt_service, short_speech)


def test_cut_off_upload_transcribes_what_arrived(stt_stub, speech):
    """A body cut short (not the header) is audio still: its first part is kept."""
    half = speech.wav[: len(speech.wav) // 2]
    reply = recognize(stt_stub, half)
    assert reply.duration_s == pytest.approx(wav_seconds(speech.wav) / 2, abs=0.1)
    assert reply.text


def test_prompt_over_the_default_limit(stt_stub, stt_service, short_speech):
    long_prompt = "Celery and Redis. " * 60  # 1080 characters; the default limit is 1000
    context = stt_pb2.SpeechContext(prompt=long_prompt)
    assert_invalid(stt_stub, short_speech.wav, "context.prompt is 1079 characters", "at most 1000", context=context)
    assert_still_answers(stt_stub, stt_service, short_speech)


# A second service whose limits small files and contexts cross.
MAX_BYTES = 200_000
MAX_SECONDS = 5
MAX_PROMPT_CHARS = 40
MAX_HOTWORDS = 3
MAX_HOTWORDS_CHARS = 30


@pytest.fixture(scope="module")
def limited(log_dir):
    service = start_service(
        "stt",
        log_dir,
        "--device",
        "cpu",
        "--max-audio-bytes",
        str(MAX_BYTES),
        "--max-audio-seconds",
        str(MAX_SECONDS),
        "--max-prompt-chars",
        str(MAX_PROMPT_CHARS),
        "--max-hotwords",
        str(MAX_HOTWORDS),
        "--max-hotwords-chars",
        str(MAX_HOTWORDS_CHARS),
    )
    channel = grpc.insecure_channel(service.address)
    yield service, stt_pb2_grpc.SttStub(channel)
    channel.close()
    service.stop()


def test_over_the_byte_limit(limited):
    service, stub = limited
    too_big = silence(4.0) + b"\0" * MAX_BYTES  # under the seconds limit, over the byte limit
    assert_invalid(stub, too_big, "too large", str(len(too_big)), str(MAX_BYTES))
    assert_within_limits_still_answers(service, stub)


def test_over_the_seconds_limit(limited, speech):
    service, stub = limited
    long_but_small = reencode(speech.wav, "mp3")  # ~10 s in ~50 kB
    assert len(long_but_small) < MAX_BYTES and wav_seconds(speech.wav) > MAX_SECONDS
    assert_invalid(stub, long_but_small, "too long", f"limit is {MAX_SECONDS} s")
    assert_within_limits_still_answers(service, stub)


def assert_within_limits_still_answers(service, stub) -> None:
    assert service.process.alive()
    reply = recognize(stub, silence(MAX_SECONDS - 0.5))
    assert reply.text == "" and reply.duration_s == pytest.approx(MAX_SECONDS - 0.5, abs=0.01)


@pytest.mark.parametrize(
    ("context", "message"),
    [
        (stt_pb2.SpeechContext(prompt="x" * (MAX_PROMPT_CHARS + 1)), "context.prompt is 41 characters; at most 40"),
        (
            stt_pb2.SpeechContext(hotwords=["Celery", "Redis", "Kafka", "gRPC"]),
            "context.hotwords has 4 entries; at most 3",
        ),
        (stt_pb2.SpeechContext(hotwords=["Celery", " "]), "context.hotwords[1] is empty"),
        (
            stt_pb2.SpeechContext(hotwords=["PostgreSQL", "Kubernetes", "ClickHouse"]),
            "context.hotwords are 32 characters together; at most 30",
        ),
    ],
    ids=["prompt-too-long", "too-many-hotwords", "empty-hotword", "hotwords-too-long"],
)
def test_context_over_the_limits(limited, context, message):
    service, stub = limited
    assert_invalid(stub, silence(1.0), message, context=context)
    assert_within_limits_still_answers(service, stub)


def test_context_at_the_limits_is_used(limited):
    _, stub = limited
    context = stt_pb2.SpeechContext(prompt="p" * MAX_PROMPT_CHARS, hotwords=["PostgreSQL", "Kubernetes", "Kafka"])
    assert recognize(stub, silence(1.0), context).context_used
    blank = stt_pb2.SpeechContext(prompt="  \n ")
    assert not recognize(stub, silence(1.0), blank).context_used
