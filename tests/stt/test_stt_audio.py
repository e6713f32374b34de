"""svc_stt.audio in-process (no model): decoding equals faster-whisper's own,
and the limits stop decoding with the numbers in the message."""

from __future__ import annotations

import io

import numpy as np
import pytest
from faster_whisper import decode_audio as faster_whisper_decode

from bench.eval.audio import reencode, silence
from svc_runtime.errors import InvalidArgument
from svc_stt.audio import decode_audio

MiB = 1024 * 1024


@pytest.mark.parametrize("encoding", ["wav", "mp3"])
def test_samples_equal_faster_whispers_decoding(speech, encoding):
    """So the service transcribes exactly what in-process faster-whisper would."""
    data = reencode(speech.wav, encoding)
    ours = decode_audio(data, max_bytes=32 * MiB, max_seconds=900)
    theirs = faster_whisper_decode(io.BytesIO(data))
    assert ours.dtype == np.float32
    np.testing.assert_array_equal(ours, theirs)


def test_duration_limit_names_the_declared_length():
    with pytest.raises(InvalidArgument, match=r"audio too long: 12\.0 s, the limit is 5 s"):
        decode_audio(silence(12.0), max_bytes=MiB, max_seconds=5)


def test_audio_of_exactly_the_limit_is_accepted():
    assert decode_audio(silence(5.0), max_bytes=MiB, max_seconds=5).size == 5 * 16000
