from __future__ import annotations

import grpc
import pytest

from aiworker.stt.v1 import stt_pb2_grpc
from aiworker_local.services import start_service
from bench.eval.audio import ESPEAK, INTERVIEW_ANSWER, SAMPLES, Speech, speak


@pytest.fixture(scope="session")
def stt_service(log_dir):
    service = start_service("stt", log_dir, "--device", "cpu")
    yield service
    service.stop()


@pytest.fixture(scope="session")
def stt_stub(stt_service):
    channel = grpc.insecure_channel(stt_service.address)
    yield stt_pb2_grpc.SttStub(channel)
    channel.close()


@pytest.fixture(scope="session")
def speech() -> Speech:
    """A few spoken sentences: synthesized now, or the committed sample when
    espeak-ng is missing (so recognition is still tested)."""
    if ESPEAK:
        return Speech(INTERVIEW_ANSWER, speak(INTERVIEW_ANSWER), "espeak-ng")
    return Speech(
        (SAMPLES / "answer.txt").read_text().strip(), (SAMPLES / "answer.wav").read_bytes(), "deploy/samples/answer.wav"
    )


@pytest.fixture(scope="session")
def short_speech(speech) -> Speech:
    """A short clip for 'the service still answers' checks."""
    if ESPEAK:
        text = "The service still answers."
        return Speech(text, speak(text), "espeak-ng")
    return speech
