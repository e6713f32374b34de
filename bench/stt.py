"""STT real-time factor: in-process faster-whisper vs svc-stt over gRPC, same
model, same settings, same ~25 s of synthesized speech, in one run.

    .venv/bin/python -m bench.stt [--runs 8]

Real-time factor (RTF) = processing seconds / audio seconds (lower is faster).
Both sides start from the file's bytes (decoding is part of the work). Runs
alternate between the two (ABBA) so load from other processes on a shared
machine hits both alike; the ratio (service throughput / in-process throughput)
is given from the medians and from the best runs. Target: ratio >= 0.95."""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import grpc
from faster_whisper import WhisperModel

from aiworker.stt.v1 import stt_pb2, stt_pb2_grpc
from aiworker_local.services import start_service
from bench.common import report
from bench.eval.audio import ESPEAK, INTERVIEW_ANSWER, NO_ESPEAK, SAMPLES, speak, wav_seconds, word_error_rate
from svc_stt.model import SpeechRecognizer
from svc_stt.servicer import recognizer_config
from svc_stt.settings import SttSettings

MORE = (
    " Before that I worked on a search product, where I tuned database queries and added caching. "
    "When something breaks in production, I first look at the logs and the metrics, and then I write a "
    "test that shows the problem before I fix it."
)


def clip() -> tuple[str, bytes]:
    if ESPEAK is None:
        print(f"note: {NO_ESPEAK}; using deploy/samples/answer.wav (shorter)")
        return (SAMPLES / "answer.txt").read_text().strip(), (SAMPLES / "answer.wav").read_bytes()
    text = INTERVIEW_ANSWER + MORE
    return text, speak(text)


def in_process_call(settings: SttSettings, recognizer: SpeechRecognizer, audio: bytes) -> Callable[[], str]:
    """faster-whisper itself, loaded as the service loads it (same dir, compute type, threads)."""
    model = WhisperModel(
        recognizer.model_source,
        device="cpu",
        compute_type=recognizer.compute_type,
        cpu_threads=recognizer.cpu_threads,
        num_workers=settings.max_concurrent,
        local_files_only=True,
    )

    def call() -> str:
        segments, _info = model.transcribe(
            io.BytesIO(audio), beam_size=settings.beam_size, vad_filter=settings.vad_filter
        )
        return " ".join(s.text.strip() for s in segments)

    return call


def time_alternating(calls: dict[str, Callable[[], str]], runs: int) -> tuple[dict[str, list[float]], dict[str, str]]:
    """Seconds per call of each side, in ABBA order; and each side's transcript."""
    texts = {name: call() for name, call in calls.items()}  # warm-up, not timed
    timings: dict[str, list[float]] = {name: [] for name in calls}
    for run in range(runs):
        for name, call in calls.items() if run % 2 == 0 else reversed(calls.items()):
            started = time.perf_counter()
            call()
            timings[name].append(time.perf_counter() - started)
    return timings, texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=8)
    args = parser.parse_args()

    text, audio = clip()
    seconds = wav_seconds(audio)
    settings = SttSettings(device="cpu")  # the service's defaults, on the CPU
    recognizer = SpeechRecognizer(
        recognizer_config(settings), "cpu"
    )  # model dir, compute type, threads: as the service
    in_process = in_process_call(settings, recognizer, audio)

    with tempfile.TemporaryDirectory() as logs:
        service = start_service("stt", Path(logs), "--device", "cpu", "--metrics-port", "-1")
        channel = grpc.insecure_channel(service.address)
        stub = stt_pb2_grpc.SttStub(channel)

        def over_grpc() -> str:
            return stub.Recognize(stt_pb2.RecognizeRequest(audio=audio), timeout=300).text

        try:
            timings, texts = time_alternating({"in-process": in_process, "service": over_grpc}, args.runs)
        finally:
            channel.close()
            service.stop()

    base_p50, base_best = statistics.median(timings["in-process"]), min(timings["in-process"])
    rows = []
    for name, values in timings.items():
        p50, best = statistics.median(values), min(values)
        rows.append(
            [name, p50, best, p50 / seconds, base_p50 / p50, base_best / best, word_error_rate(text, texts[name])]
        )
    print(
        f"{seconds:.1f} s of speech, {args.runs} timed runs per mode, model {recognizer.model_name}, "
        f"{recognizer.compute_type}, beam {settings.beam_size}, {recognizer.cpu_threads} threads"
    )
    report(
        "stt",
        ["mode", "p50 s", "best s", "RTF", "ratio", "ratio best", "WER"],
        rows,
        extra={
            "audio_seconds": seconds,
            "runs": args.runs,
            "model": recognizer.model_name,
            "device": "cpu",
            "compute_type": recognizer.compute_type,
            "beam_size": settings.beam_size,
            "cpu_threads": recognizer.cpu_threads,
            "vad_filter": settings.vad_filter,
            "timings_s": timings,
            "same_transcript": texts["in-process"] == texts["service"],
            "target": "ratio (service throughput / in-process throughput) >= 0.95",
        },
    )


if __name__ == "__main__":
    main()
