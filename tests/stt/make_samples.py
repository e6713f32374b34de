"""Writes deploy/samples/answer.{wav,mp3,txt}: a short spoken interview answer
for demos and pipelines, synthesized with espeak-ng, 16 kHz mono.

Run from the repository root: `.venv/bin/python -m tests.stt.make_samples`."""

from __future__ import annotations

from pathlib import Path

from bench.eval.audio import SAMPLES, VOICE, WORDS_PER_MINUTE, can_encode, reencode, speak

ANSWER = (
    "In my last project I designed a data pipeline with Celery and Redis that processed thousands "
    "of documents every day, and I reduced the failure rate by adding retries."
)
MAX_SAMPLE_BYTES = 500 * 1024


def write_samples(folder: Path = SAMPLES) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    wav = reencode(speak(ANSWER, voice=VOICE, words_per_minute=WORDS_PER_MINUTE), "wav", rate=16000)
    files = {"answer.wav": wav, "answer.txt": (ANSWER + "\n").encode()}
    if can_encode("mp3") is None:
        files["answer.mp3"] = reencode(wav, "mp3")
    written = []
    for name, data in files.items():
        assert len(data) < MAX_SAMPLE_BYTES, f"{name} is {len(data)} bytes"
        (folder / name).write_bytes(data)
        written.append(folder / name)
    return written


if __name__ == "__main__":
    for path in write_samples():
        print(f"{path} ({path.stat().st_size} bytes)")
