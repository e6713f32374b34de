"""svc-llm's continuous batching on a device: a random-weight Llama-shaped model
(SmolLM2-135M's shape, or a tiny one), driven by the service's own scheduler,
runner and ragged KV cache. Each prompt alone, then all together (and half of
them joining while the others decode): greedy tokens compared, tokens/s of each."""

from __future__ import annotations

import threading
import time
from typing import Any

import torch

SMOLLM2_135M = {
    "vocab_size": 49152,
    "hidden_size": 576,
    "intermediate_size": 1536,
    "num_hidden_layers": 30,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
    "rope_theta": 100000.0,
    "rms_norm_eps": 1e-5,
}
TINY = {
    **SMOLLM2_135M,
    "vocab_size": 512,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
}


def build_model(shape: dict, device: str, dtype: torch.dtype, use_transformers: bool, seed: int = 0):
    torch.manual_seed(seed)
    if use_transformers:
        from transformers import LlamaConfig, LlamaForCausalLM

        config = LlamaConfig(**shape, tie_word_embeddings=True, max_position_embeddings=4096)
        config.eos_token_id = None  # random weights: run every generation to max_new_tokens
        model = LlamaForCausalLM(config)
        model.generation_config.eos_token_id = None
        model.generation_config.pad_token_id = 0
    else:
        from bench.gpu_check.tiny_llama import LlamaShape, TinyLlama

        model = TinyLlama(LlamaShape(**shape))
    return model.to(device=device, dtype=dtype).eval()


class _Holder:
    """The scheduler's view of a model that is always loaded."""

    def __init__(self, runner) -> None:
        self._runner = runner

    def runner(self):
        return self._runner

    def loaded(self) -> bool:
        return True

    def unload_idle(self) -> None: ...


class _Collector:
    """Events of one generation: its token ids (from the text stream) and timings."""

    def __init__(self) -> None:
        self.text = ""
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.submitted = time.perf_counter()
        self.first: float | None = None

    def __call__(self, event) -> None:
        from svc_llm.sequence import GenerationEnd, GenerationError, TextDelta

        if isinstance(event, TextDelta):
            self.first = self.first or time.perf_counter()
            self.text += event.text
        elif isinstance(event, GenerationError):
            self.error = event.error
            self.done.set()
        elif isinstance(event, GenerationEnd):
            self.done.set()

    @property
    def tokens(self) -> list[int]:
        return [int(t) for t in self.text.split()]


def _decode(ids: list[int]) -> str:
    return "".join(f"{i} " for i in ids)


class Harness:
    """svc_llm's scheduler over a model built on the scheduler's own thread (as the
    service loads it: one thread runs every torch computation)."""

    def __init__(self, build, device: str, max_sequences: int) -> None:
        from svc_llm.runner import BatchRunner
        from svc_llm.scheduler import BatchLimits, Scheduler

        self.device = device
        holder = _Holder(None)
        limits = BatchLimits(
            max_sequences=max_sequences, max_tokens=1 << 30, max_prefill_tokens=1 << 20, max_queued=1 << 10
        )
        self.scheduler = Scheduler(holder, limits)
        self.model = self.scheduler.call(build)
        holder._runner = self.runner = BatchRunner(self.model, device)

    def submit(self, prompt: torch.Tensor, max_new_tokens: int) -> _Collector:
        from svc_llm.sequence import GenerationParams, GenerationSequence

        collector = _Collector()
        sequence = GenerationSequence(
            prompt,
            GenerationParams(max_new_tokens=max_new_tokens),
            max_new_tokens,
            lambda: False,
            collector,
            _decode,
            frozenset(),
            self.device,
        )
        self.scheduler.submit(sequence)
        return collector

    @staticmethod
    def wait(collectors: list[_Collector], timeout: float = 600) -> None:
        for c in collectors:
            if not c.done.wait(timeout):
                raise TimeoutError("a generation did not end")
            if c.error is not None:
                raise c.error

    def close(self) -> None:
        self.scheduler.close()


def _prompts(count: int, vocab: int, seed: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(8, 48, (count,), generator=generator).tolist()
    return [torch.randint(3, vocab, (1, n), generator=generator) for n in lengths]


def _divergence(a: list[int], b: list[int]) -> int | None:
    """Index of the first differing token (None: equal)."""
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def run(
    device: str, dtype: torch.dtype, tiny: bool, use_transformers: bool, streams: int, max_new_tokens: int
) -> dict[str, Any]:
    shape = TINY if tiny else SMOLLM2_135M
    prompts = _prompts(streams, shape["vocab_size"], seed=1)
    harness = Harness(lambda: build_model(shape, device, dtype, use_transformers), device, max_sequences=streams)
    try:
        harness.wait([harness.submit(prompts[0], 4)])  # warm-up
        started = time.perf_counter()
        alone = []
        for prompt in prompts:
            collector = harness.submit(prompt, max_new_tokens)
            harness.wait([collector])
            alone.append(collector)
        alone_seconds = time.perf_counter() - started

        started = time.perf_counter()
        together = [harness.submit(p, max_new_tokens) for p in prompts]
        harness.wait(together)
        together_seconds = time.perf_counter() - started

        # Half start, the rest join once those decode: admission between steps.
        half = max(1, streams // 2)
        joining = [harness.submit(p, max_new_tokens) for p in prompts[:half]]
        while any(len(c.text.split()) < 2 for c in joining):
            time.sleep(0.001)
        joining += [harness.submit(p, max_new_tokens) for p in prompts[half:]]
        harness.wait(joining)
        stock = {}
        if use_transformers:  # on the same thread as everything else
            stock = harness.scheduler.call(
                lambda: _against_stock(harness.model, prompts, alone, max_new_tokens, device)
            )
    finally:
        harness.close()

    tokens = sum(len(c.tokens) for c in alone)
    result: dict[str, Any] = {
        "model": "transformers LlamaForCausalLM" if use_transformers else "bench.gpu_check.tiny_llama",
        "shape": shape,
        "streams": streams,
        "max_new_tokens": max_new_tokens,
        "alone_tokens_per_s": tokens / alone_seconds,
        "batched_tokens_per_s": sum(len(c.tokens) for c in together) / together_seconds,
        "batched_vs_alone": (sum(len(c.tokens) for c in together) / together_seconds) / (tokens / alone_seconds),
        "ttft_ms_together": sorted(round((c.first - c.submitted) * 1000, 1) for c in together if c.first),
        "batched_equal_alone": sum(a.tokens == b.tokens for a, b in zip(alone, together)),
        "joined_equal_alone": sum(a.tokens == b.tokens for a, b in zip(alone, joining)),
        "first_divergence_batched": [_divergence(a.tokens, b.tokens) for a, b in zip(alone, together)],
        "first_divergence_joined": [_divergence(a.tokens, b.tokens) for a, b in zip(alone, joining)],
    }
    result["parity"] = result["batched_equal_alone"] == streams and result["joined_equal_alone"] == streams
    if stock:
        result.update(stock)
        result["alone_vs_stock"] = result["alone_tokens_per_s"] / result["stock_generate_tokens_per_s"]
    return result


def _against_stock(model, prompts, alone, max_new_tokens: int, device: str) -> dict[str, Any]:
    """transformers' own greedy generate on the same model: tokens and single-stream speed."""
    model.set_attn_implementation("sdpa")
    outputs = []
    with torch.inference_mode():
        model.generate(prompts[0].to(device), max_new_tokens=4, do_sample=False)  # warm-up
        started = time.perf_counter()
        for prompt in prompts:
            ids = prompt.to(device)
            out = model.generate(ids, max_new_tokens=max_new_tokens, do_sample=False)
            outputs.append(out[0, ids.shape[1] :].tolist())
        seconds = time.perf_counter() - started
    return {
        "stock_generate_tokens_per_s": sum(len(o) for o in outputs) / seconds,
        "alone_equal_stock": sum(c.tokens == o for c, o in zip(alone, outputs)),
        "first_divergence_stock": [_divergence(c.tokens, o) for c, o in zip(alone, outputs)],
    }
