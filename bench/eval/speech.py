"""The graded answers spoken by espeak-ng: 16 kHz mono WAVs, one voice and speed,
cached in a folder by a key of the text, voice, speed and espeak-ng version (so a
session synthesises each once). A silent answer is four seconds of quiet room
noise (a real silent recording is never all zeros).

`python -m bench.eval.speech DIR` writes them all to DIR."""

from __future__ import annotations

import functools
import hashlib
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from bench.eval.answers import ANSWERS, BY_ID, Answer
from bench.eval.audio import ESPEAK, NO_ESPEAK, VOICE, WORDS_PER_MINUTE, reencode, speak
from svc_stt.audio import SAMPLE_RATE, wav_bytes

SILENT_SECONDS = 4.0
ROOM_NOISE_RMS = 0.003  # about -50 dBFS


@functools.cache
def espeak_version() -> str:
    if ESPEAK is None:
        raise RuntimeError(NO_ESPEAK)
    return subprocess.run([ESPEAK, "--version"], capture_output=True, text=True, check=True).stdout.strip()


def room_noise(seconds: float = SILENT_SECONDS) -> bytes:
    noise = np.random.default_rng(15).standard_normal(int(seconds * SAMPLE_RATE)) * ROOM_NOISE_RMS
    return wav_bytes(noise)


def synthesize(text: str) -> bytes:
    """`text` spoken (16 kHz mono WAV); "" gives room noise."""
    if not text:
        return room_noise()
    return reencode(speak(text, voice=VOICE, words_per_minute=WORDS_PER_MINUTE), "wav", rate=SAMPLE_RATE)


def answer_audio(answer: Answer, cache_dir: Path) -> bytes:
    """The answer's WAV, from `cache_dir` when synthesised before with this espeak-ng."""
    version = espeak_version() if answer.text else "noise"
    key = hashlib.sha256(f"{VOICE}|{WORDS_PER_MINUTE}|{version}|{answer.text}".encode()).hexdigest()[:16]
    path = cache_dir / f"{answer.id}-{key}.wav"
    if not path.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".part")
        partial.write_bytes(synthesize(answer.text))
        partial.replace(path)  # a reader never sees half a file
    return path.read_bytes()


def all_answer_audio(cache_dir: Path) -> dict[str, bytes]:
    """Every answer's WAV by id."""
    return {answer.id: answer_audio(answer, cache_dir) for answer in ANSWERS}


class SpokenAnswers(Mapping[str, bytes]):
    """Answers' WAVs by id, each synthesised when first asked for (a smoke test speaks
    only the few it uses), then read from the cache."""

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = cache_dir

    def __getitem__(self, answer_id: str) -> bytes:
        return answer_audio(BY_ID[answer_id], self.cache_dir)

    def __iter__(self) -> Iterator[str]:
        return iter(BY_ID)

    def __len__(self) -> int:
        return len(BY_ID)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m bench.eval.speech DIR")
    folder = Path(sys.argv[1])
    for answer_id, data in all_answer_audio(folder).items():
        print(f"{answer_id}: {len(data)} bytes")
