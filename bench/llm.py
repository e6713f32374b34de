"""svc-llm tokens/s and time to first token: the same engine in-process vs the
service over gRPC (GenerateStream), same model, same prompts, greedy decoding,
same max_new_tokens, in one run.

    .venv/bin/python -m bench.llm [--rounds 5] [--max-new-tokens 64] [--device cpu] [--num-threads 0]

Tokens/s = completion tokens / seconds from the call to the last token; time to
first token (TTFT) = the call to the first text delta, prefill included. Rounds
alternate between the two sides so load from other processes on a shared
machine hits both alike; medians of the per-round figures are compared, and the
texts of both sides must match (greedy decoding). Target: service >= 0.95x
in-process tokens/s. Writes bench/results/llm.json.

The in-process side runs each generation in a fresh worker thread, as the
servicer does, so the ratio measures what gRPC and the servicer add. On this
shared 2-core box, generating on the main thread with torch's default two
OpenMP threads was 2-4x slower and erratic whenever other processes held a core
(`--main-thread` shows it); worker threads ran steadily at about one core.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from aiworker.llm.v1 import llm_pb2, llm_pb2_grpc
from bench.common import RESULTS, percentile, report
from tests.support.services import start_service

TARGET = 0.95
PROMPTS = [
    "Write a very long story about a dragon, with many chapters.",
    "Explain how a Celery worker retries a failed task, step by step.",
    "Describe your experience building backend services in Python.",
    "List twenty ideas for a weekend trip, with a sentence on each.",
]


@dataclass
class Run:
    """One side's figures over all prompts of one round."""

    tokens: int = 0
    seconds: float = 0.0
    ttft: list[float] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else float("nan")


def in_process_round(engine, max_new_tokens: int, main_thread: bool = False) -> Run:
    """Each generation in a fresh worker thread, as LlmServicer runs it (unless main_thread)."""
    from svc_llm.model import ChatMessage, GenerationEnd, GenerationParams

    run = Run()
    for prompt in PROMPTS:
        parts: list[str] = []
        marks: dict[str, float] = {}

        def generate() -> None:
            for event in engine.generate([ChatMessage("user", prompt)],
                                         GenerationParams(max_new_tokens=max_new_tokens), lambda: False):
                if isinstance(event, GenerationEnd):
                    run.tokens += event.completion_tokens
                else:
                    marks.setdefault("first", time.perf_counter())
                    parts.append(event.text)

        started = time.perf_counter()
        if main_thread:
            generate()
        else:
            worker = threading.Thread(target=generate, name="llm-generation")
            worker.start()
            worker.join()
        run.seconds += time.perf_counter() - started
        run.ttft.append(marks["first"] - started)
        run.texts.append("".join(parts))
    return run


def service_round(stub, max_new_tokens: int) -> Run:
    run = Run()
    for prompt in PROMPTS:
        request = llm_pb2.GenerateRequest(messages=[llm_pb2.ChatMessage(role="user", content=prompt)],
                                          max_new_tokens=max_new_tokens, temperature=0.0)
        parts: list[str] = []
        started = time.perf_counter()
        first = None
        for message in stub.GenerateStream(request, timeout=600):
            if message.HasField("done"):
                run.tokens += message.done.usage.completion_tokens
            else:
                first = first or time.perf_counter()
                parts.append(message.delta.text)
        run.seconds += time.perf_counter() - started
        run.ttft.append(first - started)
        run.texts.append("".join(parts))
    return run


def _summary(runs: list[Run]) -> dict:
    ttft = [t for run in runs for t in run.ttft]
    return {
        "tokens_per_s": statistics.median(run.tokens_per_s for run in runs),
        "best_tokens_per_s": max(run.tokens_per_s for run in runs),
        "runs_tokens_per_s": [run.tokens_per_s for run in runs],
        "tokens": sum(run.tokens for run in runs),
        "ttft_p50_ms": percentile(ttft, 0.5) * 1000,
        "ttft_p95_ms": percentile(ttft, 0.95) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds per side, alternating (default 5)")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="per generation (default 64)")
    parser.add_argument("--device", default="cpu", help="device for both sides (default cpu)")
    parser.add_argument("--main-thread", action="store_true",
                        help="run the in-process side on the main thread instead of a worker thread")
    parser.add_argument("--num-threads", type=int, default=0, help="torch CPU threads, both sides (0 = default)")
    parser.add_argument("--log-dir", type=Path, default=None, help="service log (default: a temp dir)")
    args = parser.parse_args()
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("TQDM_DISABLE", "1")
    from svc_llm.model import LlmEngine
    from svc_llm.settings import LlmSettings
    from svc_runtime.logs import configure_logging

    configure_logging("warning", "console")
    load_before = os.getloadavg()
    limit = max(2048, args.max_new_tokens)
    engine = LlmEngine(LlmSettings(device=args.device, num_threads=args.num_threads, max_new_tokens_limit=limit),
                       args.device)
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="bench-llm-"))
    service = start_service("llm", log_dir, "--device", args.device, "--max-new-tokens-limit", str(limit),
                            "--num-threads", str(args.num_threads))
    try:
        engine.preload()
        local_runs, served_runs = [], []
        with grpc.insecure_channel(service.address) as channel:
            stub = llm_pb2_grpc.LlmStub(channel)
            in_process_round(engine, 4, args.main_thread)  # warm-up, both sides
            service_round(stub, 4)
            for _ in range(args.rounds):
                local_runs.append(in_process_round(engine, args.max_new_tokens, args.main_thread))
                served_runs.append(service_round(stub, args.max_new_tokens))
    finally:
        service.stop()

    local, served = _summary(local_runs), _summary(served_runs)
    mismatched = sum(a != b for lr, sr in zip(local_runs, served_runs) for a, b in zip(lr.texts, sr.texts))
    ratio = served["tokens_per_s"] / local["tokens_per_s"]
    best_ratio = served["best_tokens_per_s"] / local["best_tokens_per_s"]
    columns = ["mode", "gens", "tokens", "tok/s med", "tok/s best", "TTFT p50 ms", "TTFT p95 ms"]
    generations = len(PROMPTS) * args.rounds
    rows = [
        ["in-process" + (" (main thread)" if args.main_thread else ""), generations, local["tokens"], local["tokens_per_s"], local["best_tokens_per_s"],
         local["ttft_p50_ms"], local["ttft_p95_ms"]],
        ["service (gRPC stream)", generations, served["tokens"], served["tokens_per_s"],
         served["best_tokens_per_s"], served["ttft_p50_ms"], served["ttft_p95_ms"]],
        ["service / in-process", "", "", ratio, best_ratio, served["ttft_p50_ms"] / local["ttft_p50_ms"],
         served["ttft_p95_ms"] / local["ttft_p95_ms"]],
    ]
    path = report("llm", columns, rows, extra={
        "prompts": PROMPTS, "rounds": args.rounds, "max_new_tokens": args.max_new_tokens, "device": args.device,
        "decoding": "greedy", "num_threads": args.num_threads, "in_process_main_thread": args.main_thread, "in_process": local, "service": served,
        "texts_mismatched": mismatched,
        "targets": {"service_vs_in_process_tokens_per_s": ratio, "target": TARGET, "met": ratio >= TARGET},
        "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
        "note": "client, service and in-process engine share this machine's CPUs; rounds alternate",
    })
    print(f"service {ratio:.2f}x in-process tokens/s (median; best runs {best_ratio:.2f}x; target >= {TARGET}) -> "
          f"{'met' if ratio >= TARGET else 'MISSED'}; TTFT p50 {served['ttft_p50_ms']:.0f} ms vs "
          f"{local['ttft_p50_ms']:.0f} ms; {mismatched} of {generations} texts differ; load average "
          f"{load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after; "
          f"wrote {path.relative_to(RESULTS.parent.parent)}")


if __name__ == "__main__":
    main()
