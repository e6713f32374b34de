"""The answers' speech: 16 kHz mono, synthesised once into the cache, the same every time."""

from __future__ import annotations

import io
import wave

import pytest

from bench.eval.answers import BY_ID
from bench.eval.audio import ESPEAK, NO_ESPEAK
from bench.eval.speech import answer_audio, synthesize

pytestmark = pytest.mark.skipif(ESPEAK is None, reason=NO_ESPEAK)


def test_answer_is_synthesised_once_then_read_from_the_cache(tmp_path):
    answer = BY_ID["backend-services-very-short"]
    first = answer_audio(answer, tmp_path)
    cached = list(tmp_path.iterdir())
    assert len(cached) == 1 and cached[0].name.startswith(answer.id)
    cached[0].write_bytes(b"marked")
    assert answer_audio(answer, tmp_path) == b"marked"  # read from the cache, not synthesised again
    with wave.open(io.BytesIO(first)) as wav:
        assert (wav.getframerate(), wav.getnchannels()) == (16000, 1)
        assert 0.5 < wav.getnframes() / 16000 < 5


def test_synthesis_is_deterministic():
    assert synthesize("Celery and Redis.") == synthesize("Celery and Redis.")
