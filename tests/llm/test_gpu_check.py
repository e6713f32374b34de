"""The GPU check (`make gpu-check`, bench/gpu_check) in its CPU fallback: tiny
random-weight models, seconds. Once with this virtualenv, once rehearsing a
bare PyTorch machine (grpc, structlog, prometheus_client, pydantic, pydantic-settings,
transformers and sentence-transformers hidden), so the script never rots."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # runs the GPU check's CPU fallback as a process

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "gpu_check" / "run.py"


def _run(tmp_path: Path, *flags: str) -> dict:
    out = tmp_path / "gpu_check.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--device", "cpu", "--tiny", "--out", str(out), *flags],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,  # not the checkout: the script finds its own way in
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(out.read_text())


def test_the_cpu_fallback_checks_batched_against_alone_and_against_stock_generate(tmp_path):
    report = _run(tmp_path)
    assert report["device"] == "cpu" and report["modules"]["transformers"] == "real"
    assert report["modules"]["grpc"] == "real" and report["serving_stack_imported"] == []  # installed, not needed
    llm = report["llm"]["float32"]
    assert llm["model"] == "transformers LlamaForCausalLM"
    # The same greedy tokens whether a prompt ran alone, with all others, or joined a running batch.
    assert llm["parity"] and llm["batched_equal_alone"] == llm["joined_equal_alone"] == llm["streams"]
    # Alone, the ragged cache gives the tokens of transformers' own generate.
    assert llm["alone_equal_stock"] == llm["streams"]
    assert llm["batched_tokens_per_s"] > 0 and llm["stock_generate_tokens_per_s"] > 0
    embedder = report["embedder"]["float32"]
    assert embedder["parity"] and embedder["max_abs_diff_batched_vs_single"] <= 1e-5
    assert embedder["batcher_texts_per_s"] > 0


def test_the_check_runs_on_a_bare_pytorch_machine(tmp_path):
    report = _run(tmp_path, "--simulate-bare")
    stack = ("grpc", "structlog", "prometheus_client", "pydantic", "pydantic_settings")
    assert {report["modules"][name] for name in stack} == {"absent"}
    assert report["modules"]["transformers"] == "absent"
    llm = report["llm"]["float32"]
    assert llm["model"] == "bench.gpu_check.tiny_llama" and llm["parity"]
    assert "skipped" in report["embedder"]["float32"]
