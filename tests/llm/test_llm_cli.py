"""The console entry point: flags, and a model that cannot load."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from aiworker_local.infra import free_port

pytestmark = pytest.mark.slow  # starts aiworker-llm as a process

ENV = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]}


def test_help_lists_the_llm_flags():
    out = subprocess.run(["aiworker-llm", "--help"], capture_output=True, text=True, check=True, env=ENV)
    for flag in (
        "--model",
        "--gguf-file",
        "--load-mode",
        "--max-queued-requests",
        "--max-new-tokens-limit",
        "--default-max-new-tokens",
        "--torch-dtype",
        "--num-threads",
        "--device",
    ):
        assert flag in out.stdout


def test_inconsistent_token_limits_are_refused_at_start():
    out = subprocess.run(
        ["aiworker-llm", "--default-max-new-tokens", "500", "--max-new-tokens-limit", "100"],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=60,
    )
    assert out.returncode != 0
    assert "default_max_new_tokens (500) is over max_new_tokens_limit (100)" in out.stderr


def test_a_model_that_cannot_load_ends_the_process_with_a_reason(tmp_path):
    missing = tmp_path / "no-such-model"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "svc_llm",
            "--model",
            str(missing),
            "--device",
            "cpu",
            "--port",
            str(free_port()),
            "--metrics-port",
            "-1",
            "--log-format",
            "json",
        ],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=120,
    )
    assert out.returncode == 3, out.stderr[-2000:]
    assert "model_load_failed" in out.stderr and str(missing) in out.stderr
