"""The committed sample answer in deploy/samples: small, 16 kHz mono, in step
with its generator, and recognized by the service."""

from __future__ import annotations

import io

import av
import pytest

from aiworker.stt.v1 import stt_pb2
from bench.eval.audio import SAMPLES, word_error_rate
from tests.stt.make_samples import ANSWER, MAX_SAMPLE_BYTES

MAX_WER = 0.35


def test_answer_text_is_the_generator_text():
    assert (SAMPLES / "answer.txt").read_text().strip() == ANSWER


@pytest.mark.parametrize("name", ["answer.wav", "answer.mp3"])
def test_sample_is_small_16k_mono_speech_the_service_recognizes(stt_stub, name):
    path = SAMPLES / name
    if name == "answer.mp3" and not path.exists():
        pytest.skip("answer.mp3 is written only where PyAV can encode mp3")
    data = path.read_bytes()
    assert len(data) < MAX_SAMPLE_BYTES
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.audio[0]
        assert (stream.rate, stream.channels) == (16000, 1)
    reply = stt_stub.Recognize(stt_pb2.RecognizeRequest(audio=data, language="en"), timeout=120)
    assert word_error_rate(ANSWER, reply.text) <= MAX_WER, reply.text
    assert 5.0 < reply.duration_s < 15.0
