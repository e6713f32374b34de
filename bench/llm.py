"""svc-llm with continuous batching, in one run:

1. concurrency: N streams at once (N in --concurrency, default 1,4,8) against the
   same service serving the same N requests one at a time; aggregate tokens/s
   and the ratio (target >= 4x at 8 streams), time to first token per stream;
2. single stream: the service's tokens/s for one request at a time against stock
   transformers `model.generate` in this process (greedy, same prompt, same
   max_new_tokens, the model loaded the same way; target >= 0.95x);
3. the ceiling: one decode step of the stock model (its own forward, KV cache of
   STEP_PAST_TOKENS) for N sequences at once against N steps of one sequence:
   no scheduler can batch N streams better than that on this machine.

    .venv/bin/python -m bench.llm [--rounds 3] [--max-new-tokens 64] [--concurrency 1,4,8] [--device cpu]

Tokens/s of one request = completion tokens / seconds from the call to its last
token; time to first token (TTFT) = the call to the first text delta, queueing
and prefill included. Each round measures every mode back to back (stock, the
service sequential over all prompts, then each concurrency), so load from other
processes on a shared machine hits all modes of a round alike; the median of the
rounds' ratios is the verdict. Greedy decoding: the texts of all modes must
match (batched or alone, service or stock), and the JSON says how many differ.
The sequential figure of N streams is the first N prompts of the sequential
pass (the very same requests). Writes bench/results/llm.json.

The stock side loads and generates on this process's main thread only, and
the service runs every torch computation on its scheduler thread: libgomp
keeps an OpenMP pool per thread that ran a parallel region, and two pools on a
2-core machine make every step about twice as slow (svc_llm.scheduler).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import grpc

from aiworker.llm.v1 import llm_pb2, llm_pb2_grpc
from aiworker_local.services import start_service
from bench.common import RESULTS, percentile, report

TARGET_BATCHED = 4.0  # aggregate tokens/s at 8 streams vs the same requests one at a time
TARGET_SINGLE = 0.95  # one stream vs stock generate
STEP_PAST_TOKENS = 96  # the cache length of the decode-step timing: a prompt and some tokens written
PROMPTS = [
    "Write a very long story about a dragon, with many chapters.",
    "Explain how a Celery worker retries a failed task, step by step.",
    "Describe your experience building backend services in Python.",
    "List twenty ideas for a weekend trip, with a sentence on each.",
    "Tell me about a time you had to debug a production incident.",
    "Give me a haiku about autumn rain, then explain it line by line.",
    "Compare PostgreSQL and Redis for storing task history.",
    "Write a short cover letter for a backend engineering job.",
]


@dataclass
class Generation:
    text: str
    tokens: int
    seconds: float  # call to last token
    ttft: float  # call to first text


class Stock:
    """The same model as the service loads it, driven by transformers' own generate."""

    def __init__(self, device: str, max_new_tokens: int) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        from svc_llm.settings import LlmSettings

        hf_logging.disable_progress_bar()
        settings = LlmSettings(device=device)
        options = {"gguf_file": settings.gguf_file} if settings.gguf_file else {}
        dtype = torch.float16 if device.startswith("cuda") else torch.float32
        self.tokenizer = AutoTokenizer.from_pretrained(settings.model, local_files_only=True, **options)
        self.model = AutoModelForCausalLM.from_pretrained(
            settings.model, dtype=dtype, local_files_only=True, **options
        ).to(device)
        self.model.eval()
        self.device = device
        self.max_new_tokens = max_new_tokens

    def generate(self, prompt: str) -> Generation:
        import torch

        ids = self.tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, return_tensors="pt", return_dict=True
        )["input_ids"].to(self.device)
        marks = _FirstToken()
        started = time.perf_counter()
        with torch.inference_mode():
            out = self.model.generate(ids, max_new_tokens=self.max_new_tokens, do_sample=False, streamer=marks)
        seconds = time.perf_counter() - started
        new = out[0, ids.shape[1] :]
        text = self.tokenizer.decode(new, skip_special_tokens=True)
        return Generation(text, int(new.shape[0]), seconds, (marks.first or started) - started)

    def decode_step_seconds(self, batch: int, past: int, steps: int = 24) -> float:
        """Median time of one decode step (one new token for each of `batch` sequences
        with `past` tokens cached), the model's own forward: what batching can gain is
        bounded by batch x step(1) / step(batch)."""
        import torch

        ids = torch.randint(100, 1000, (batch, past), device=self.device)
        times = []
        with torch.inference_mode():
            out = self.model(ids, use_cache=True)
            cache, last = out.cache, out.logits[:, -1:].argmax(-1)
            for _ in range(steps):
                started = time.perf_counter()
                out = self.model(last, cache=cache, use_cache=True)
                cache, last = out.cache, out.logits[:, -1:].argmax(-1)
                times.append(time.perf_counter() - started)
        return statistics.median(times[2:])  # the first steps warm the allocator


class _FirstToken:
    """A generate() streamer that only notes when the first new token came (the first put is the prompt)."""

    def __init__(self) -> None:
        self.puts = 0
        self.first: float | None = None

    def put(self, value) -> None:
        self.puts += 1
        if self.puts == 2:
            self.first = time.perf_counter()

    def end(self) -> None: ...


def stream_one(stub, prompt: str, max_new_tokens: int) -> Generation:
    request = llm_pb2.GenerateRequest(
        messages=[llm_pb2.ChatMessage(role="user", content=prompt)], max_new_tokens=max_new_tokens, temperature=0.0
    )
    parts: list[str] = []
    started = time.perf_counter()
    first = None
    tokens = 0
    for message in stub.GenerateStream(request, timeout=900):
        if message.HasField("done"):
            tokens = message.done.usage.completion_tokens
        else:
            first = first or time.perf_counter()
            parts.append(message.delta.text)
    return Generation("".join(parts), tokens, time.perf_counter() - started, (first or started) - started)


def concurrently(stub, prompts: list[str], max_new_tokens: int) -> tuple[list[Generation], float]:
    """Every prompt as its own stream, all started together; (generations, wall seconds)."""
    results: list[Generation | None] = [None] * len(prompts)
    start = threading.Barrier(len(prompts) + 1)

    def run(i: int) -> None:
        start.wait()
        results[i] = stream_one(stub, prompts[i], max_new_tokens)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(prompts))]
    for thread in threads:
        thread.start()
    start.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    return [r for r in results if r is not None], time.perf_counter() - started


def rate(generations: list[Generation], seconds: float | None = None) -> float:
    """Tokens/s: all tokens over `seconds`, or over the generations' own times (one at a time)."""
    total = seconds if seconds is not None else sum(g.seconds for g in generations)
    return sum(g.tokens for g in generations) / total if total else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every mode (default 3)")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="per generation (default 64)")
    parser.add_argument("--concurrency", default="1,4,8", help="streams at once (default 1,4,8; at most 8)")
    parser.add_argument("--device", default="cpu", help="device for both sides (default cpu)")
    parser.add_argument(
        "--service-arg", action="append", default=[], help="extra flag, e.g. --service-arg=--num-threads=2"
    )
    parser.add_argument("--log-dir", type=Path, default=None, help="service log (default: a temp dir)")
    args = parser.parse_args()
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("TQDM_DISABLE", "1")
    levels = [int(c) for c in args.concurrency.split(",")]
    if max(levels) > len(PROMPTS):
        parser.error(f"--concurrency: at most {len(PROMPTS)} (one distinct prompt per stream)")
    prompts = PROMPTS[: max(levels)]
    load_before = os.getloadavg()

    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="bench-llm-"))
    service_args = [
        "--device",
        args.device,
        "--max-new-tokens-limit",
        str(max(2048, args.max_new_tokens)),
        "--max-batch-sequences",
        str(max(levels)),
        "--max-queued-requests",
        str(max(levels)),
        *[part for arg in args.service_arg for part in arg.split("=", 1)],
    ]
    service = start_service("llm", log_dir, *service_args)
    stock_runs: list[list[Generation]] = []
    sequential_runs: list[list[Generation]] = []
    concurrent_runs: dict[int, list[tuple[list[Generation], float]]] = {c: [] for c in levels}
    step_runs: dict[int, list[float]] = {c: [] for c in levels}
    try:
        stock = Stock(args.device, args.max_new_tokens)
        with grpc.insecure_channel(service.address) as channel:
            stub = llm_pb2_grpc.LlmStub(channel)
            stock.generate(prompts[0])  # warm-up, both sides
            stream_one(stub, prompts[0], 8)
            for round_number in range(args.rounds):
                stock_runs.append([stock.generate(p) for p in prompts])
                sequential_runs.append([stream_one(stub, p, args.max_new_tokens) for p in prompts])
                for c in levels:
                    concurrent_runs[c].append(concurrently(stub, prompts[:c], args.max_new_tokens))
                for c in levels:
                    step_runs[c].append(stock.decode_step_seconds(c, STEP_PAST_TOKENS))
                print(
                    f"round {round_number + 1}: stock {rate(stock_runs[-1]):.1f} tok/s, service one at a time "
                    f"{rate(sequential_runs[-1]):.1f} tok/s, "
                    + ", ".join(f"{c} streams {rate(*concurrent_runs[c][-1]):.1f} tok/s" for c in levels)
                    + f" (load {os.getloadavg()[0]:.1f})",
                    flush=True,
                )
    finally:
        service.stop()

    reference = [g.text for g in sequential_runs[0]]
    mismatched = {
        "stock": sum(g.text != reference[i] for run in stock_runs for i, g in enumerate(run)),
        "sequential": sum(g.text != reference[i] for run in sequential_runs for i, g in enumerate(run)),
        **{
            f"concurrent_{c}": sum(g.text != reference[i] for gens, _ in runs for i, g in enumerate(gens))
            for c, runs in concurrent_runs.items()
        },
    }
    single = [rate(s) / rate(k) for s, k in zip(sequential_runs, stock_runs)]
    figures: dict[int, dict] = {}
    for c, runs in concurrent_runs.items():
        ratios = [rate(gens, wall) / rate(seq[:c]) for (gens, wall), seq in zip(runs, sequential_runs)]
        ttft = [g.ttft for gens, _ in runs for g in gens]
        figures[c] = {
            "tokens_per_s": statistics.median(rate(gens, wall) for gens, wall in runs),
            "sequential_tokens_per_s": statistics.median(rate(seq[:c]) for seq in sequential_runs),
            "ratio": statistics.median(ratios),
            "ratios": ratios,
            "ttft_p50_ms": percentile(ttft, 0.5) * 1000,
            "ttft_p95_ms": percentile(ttft, 0.95) * 1000,
            "decode_step_ms": statistics.median(step_runs[c]) * 1000,
            # batching's ceiling here: c steps of one sequence against one step of c
            "bound": c * statistics.median(step_runs[1]) / statistics.median(step_runs[c]) if 1 in step_runs else None,
        }
    stock_ttft = [g.ttft for run in stock_runs for g in run]
    single_ttft = [g.ttft for run in sequential_runs for g in run]
    top = max(levels)
    verdict = {
        "streams": top,
        "batched_vs_sequential": figures[top]["ratio"],
        "target_batched": TARGET_BATCHED,
        "batched_met": figures[top]["ratio"] >= TARGET_BATCHED,
        "single_vs_stock": statistics.median(single),
        "target_single": TARGET_SINGLE,
        "single_met": statistics.median(single) >= TARGET_SINGLE,
        "ttft_p95_ms_at_top": figures[top]["ttft_p95_ms"],
        "bound_at_top": figures[top]["bound"],
    }
    columns = [
        "mode",
        "streams",
        "tok/s (median)",
        "vs one at a time",
        "vs stock",
        "TTFT p50 ms",
        "TTFT p95 ms",
        "decode step ms",
        "ceiling",
    ]
    rows = [
        [
            "stock generate (in-process)",
            1,
            statistics.median(rate(r) for r in stock_runs),
            "",
            1.0,
            percentile(stock_ttft, 0.5) * 1000,
            percentile(stock_ttft, 0.95) * 1000,
            "",
            "",
        ],
        [
            "service, one at a time",
            1,
            statistics.median(rate(r) for r in sequential_runs),
            1.0,
            verdict["single_vs_stock"],
            percentile(single_ttft, 0.5) * 1000,
            percentile(single_ttft, 0.95) * 1000,
            "",
            "",
        ],
    ]
    for c, f in figures.items():
        rows.append(
            [
                "service, concurrent",
                c,
                f["tokens_per_s"],
                f["ratio"],
                "",
                f["ttft_p50_ms"],
                f["ttft_p95_ms"],
                f["decode_step_ms"],
                f["bound"] if f["bound"] is not None else "",
            ]
        )
    path = report(
        "llm",
        columns,
        rows,
        extra={
            "prompts": prompts,
            "rounds": args.rounds,
            "max_new_tokens": args.max_new_tokens,
            "device": args.device,
            "decoding": "greedy",
            "service_args": service_args,
            "concurrency": {str(c): f for c, f in figures.items()},
            "single_vs_stock_per_round": single,
            "texts_mismatched": mismatched,
            "targets": verdict,
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
            "note": "client, service and the stock model share this machine's CPUs; every round measures all modes",
        },
    )
    print(
        f"{top} streams: {verdict['batched_vs_sequential']:.2f}x the same requests one at a time "
        f"(target >= {TARGET_BATCHED}) -> {'met' if verdict['batched_met'] else 'MISSED'}"
        + (
            f" (ceiling here {verdict['bound_at_top']:.2f}x: a stock decode step of {top} sequences vs {top} of one)"
            if verdict["bound_at_top"]
            else ""
        )
        + "; TTFT p95 "
        f"{verdict['ttft_p95_ms_at_top']:.0f} ms; single stream {verdict['single_vs_stock']:.2f}x stock generate "
        f"(target >= {TARGET_SINGLE}) -> {'met' if verdict['single_met'] else 'MISSED'}; texts differing from the "
        f"first sequential pass: {mismatched}; load average {load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} "
        f"after; wrote {path.relative_to(RESULTS.parent.parent)}"
    )


if __name__ == "__main__":
    main()
