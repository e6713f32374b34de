"""Audio the STT tests, the benchmarks and the evaluations make (and deploy/samples): speech from
espeak-ng, re-encoded with PyAV into other containers/codecs, silence, and the
word error rate of a transcript."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import av
import jiwer
import numpy as np

from svc_stt.audio import wav_bytes

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "deploy" / "samples"

ESPEAK = shutil.which("espeak-ng")
VOICE, WORDS_PER_MINUTE = "en-us", 165  # the clearest of espeak-ng's voices for tiny.en here
NO_ESPEAK = "espeak-ng is not installed (apt-get install espeak-ng, or `make system-deps`)"

# Plain words, no numbers (Whisper writes "5" for "five", which WER would count as a miss).
INTERVIEW_ANSWER = (
    "Good morning. My name is Alex and I have worked as a backend engineer for five years. "
    "I enjoy building reliable systems that help people do their work. "
    "In my last job I led a small team that moved our services to the cloud."
)


@dataclass(frozen=True)
class Speech:
    text: str
    wav: bytes
    source: str  # how it was made (espeak-ng, or the committed sample's path)


@dataclass(frozen=True)
class Encoding:
    container: str
    codec: str
    rate: int | None = None  # None = keep the input's rate
    layout: str = "mono"


# name → how to write it. ogg/vorbis is stereo: FFmpeg's own vorbis encoder refuses mono.
ENCODINGS = {
    "wav": Encoding("wav", "pcm_s16le"),
    "flac": Encoding("flac", "flac"),
    "mp3": Encoding("mp3", "libmp3lame"),
    "ogg-vorbis": Encoding("ogg", "vorbis", layout="stereo"),
    "ogg-opus": Encoding("ogg", "libopus", rate=48000),
    "m4a-aac": Encoding("ipod", "aac"),
}


def speak(text: str, voice: str = "en", words_per_minute: int = 175) -> bytes:
    """espeak-ng's WAV (22.05 kHz mono s16) of `text`."""
    if ESPEAK is None:
        raise RuntimeError(NO_ESPEAK)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "speech.wav"
        subprocess.run(
            [ESPEAK, "-v", voice, "-s", str(words_per_minute), "-w", str(out), text],
            check=True,
            capture_output=True,
            timeout=60,
        )
        return out.read_bytes()


def can_encode(name: str) -> str | None:
    """None when this PyAV build can write `name`, else the reason it cannot."""
    encoding = ENCODINGS[name]
    try:
        av.codec.Codec(encoding.codec, "w")
    except Exception as exc:  # noqa: BLE001 - UnknownCodecError and friends
        return f"this PyAV build has no {encoding.codec} encoder ({exc})"
    if encoding.container not in av.formats_available:
        return f"this PyAV build has no {encoding.container} muxer"
    return None


def reencode(data: bytes, name: str, rate: int | None = None) -> bytes:
    """`data` (any audio PyAV reads) re-encoded as ENCODINGS[name]."""
    encoding = ENCODINGS[name]
    out = io.BytesIO()
    with av.open(io.BytesIO(data)) as source, av.open(out, "w", format=encoding.container) as target:
        source_stream = source.streams.audio[0]
        stream = target.add_stream(
            encoding.codec, rate=rate or encoding.rate or source_stream.rate, layout=encoding.layout
        )
        if encoding.codec == "vorbis":
            stream.codec_context.options = {"strict": "experimental"}
        formats = stream.codec_context.codec.audio_formats
        resampler = av.AudioResampler(
            format=formats[0].name if formats else "s16", layout=encoding.layout, rate=stream.rate
        )
        for frame in source.decode(source_stream):
            for piece in resampler.resample(frame):
                target.mux(stream.encode(piece))
        for piece in resampler.resample(None):
            target.mux(stream.encode(piece))
        target.mux(stream.encode(None))
    return out.getvalue()


def silence(seconds: float, rate: int = 16000) -> bytes:
    return wav_bytes(np.zeros(int(seconds * rate)), rate)


def wav_seconds(data: bytes) -> float:
    with wave.open(io.BytesIO(data)) as wav:
        return wav.getnframes() / wav.getframerate()


def normalize(text: str) -> str:
    """Lower case, words only: punctuation and case are not recognition errors."""
    return " ".join(re.sub(r"[^a-z0-9']+", " ", text.lower()).split())


def word_error_rate(reference: str, hypothesis: str) -> float:
    return jiwer.wer(normalize(reference), normalize(hypothesis))
