"""The console entry point: flags, and configuration errors that stop start-up."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # starts aiworker-stt as a process


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "svc_stt", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )


def test_help_lists_the_stt_flags():
    out = run("--help")
    assert out.returncode == 0
    for flag in (
        "--host",
        "--port",
        "--metrics-port",
        "--model",
        "--compute-type",
        "--beam-size",
        "--cpu-threads",
        "--max-audio-bytes",
        "--max-audio-seconds",
        "--vad-filter",
        "--max-prompt-chars",
        "--max-hotwords",
        "--max-hotwords-chars",
        "--device",
    ):
        assert flag in out.stdout
    assert "default: 50054" in out.stdout


def test_compute_type_the_device_lacks_is_a_clear_startup_error():
    out = run("--port", "0", "--metrics-port", "-1", "--device", "cpu", "--compute-type", "float16")
    assert out.returncode == 2
    assert "compute type 'float16' is not supported on cpu" in out.stderr


def test_model_that_is_not_there_fails_the_load_offline():
    out = run("--port", "0", "--metrics-port", "-1", "--device", "cpu", "--model", "/nonexistent/whisper")
    assert out.returncode == 3
    assert "cannot load Whisper model '/nonexistent/whisper'" in out.stderr


def test_compute_type_follows_the_device():
    from svc_stt.model import resolve_compute_type

    assert resolve_compute_type("auto", "cpu") == "int8"
    assert resolve_compute_type("int8_float32", "cpu") == "int8_float32"
