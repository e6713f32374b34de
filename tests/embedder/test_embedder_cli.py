"""The console entry point: flags, environment settings, start-up errors."""

from __future__ import annotations

import os
import subprocess
import sys

import grpc
import pytest

from aiworker.embedder.v1 import embedder_pb2_grpc
from aiworker_local.services import start_service
from svc_embedder.settings import EmbedderSettings
from tests.embedder.support import embed

pytestmark = pytest.mark.slow  # starts aiworker-embedder as a process


def test_defaults():
    settings = EmbedderSettings()
    assert (settings.port, settings.metrics_port, settings.device) == (50052, 9152, "auto")
    assert settings.model == ""  # the bundled model, found when the model loads
    assert (settings.max_batch_size, settings.max_queue_delay_ms) == (64, 5.0)
    assert settings.half_precision is False


def test_help_lists_the_flags():
    out = subprocess.run(
        [sys.executable, "-m", "svc_embedder", "--help"], capture_output=True, text=True, check=True, timeout=60
    )
    for flag in (
        "--port",
        "--metrics-port",
        "--device",
        "--model",
        "--max-batch-size",
        "--max-queue-delay-ms",
        "--max-queued-texts",
        "--max-texts-per-call",
        "--max-text-chars",
        "--half-precision",
    ):
        assert flag in out.stdout


def test_environment_settings_apply(log_dir):
    service = start_service(
        "embedder",
        log_dir,
        "--device",
        "cpu",
        env={
            "AIWORKER_EMBEDDER_MAX_TEXTS_PER_CALL": "3",
            "AIWORKER_EMBEDDER_MODEL_NAME": "minilm-from-env",
            "AIWORKER_EMBEDDER_TORCH_THREADS": "1",
        },
    )
    try:
        with grpc.insecure_channel(service.address) as channel:
            stub = embedder_pb2_grpc.EmbedderStub(channel)
            assert embed(stub, ["a", "b", "c"]).model == "minilm-from-env"
            with pytest.raises(grpc.RpcError) as err:
                embed(stub, ["a", "b", "c", "d"])
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "the limit is 3" in err.value.details()
        warm = [line for line in service.process.log_path.read_text().splitlines() if '"embedder_warm"' in line]
        # The thread count is the one the model computed with, on the batcher's thread.
        assert warm and '"device": "cpu"' in warm[0] and '"torch_threads": 1' in warm[0]
    finally:
        service.stop()


def test_a_missing_model_directory_fails_the_start_with_a_clear_message(tmp_path):
    missing = tmp_path / "no-such-model"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "svc_embedder",
            "--port",
            "0",
            "--metrics-port",
            "-1",
            "--device",
            "cpu",
            "--log-format",
            "json",
            "--model",
            str(missing),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 3
    assert "model_load_failed" in result.stderr
    assert f"model directory '{missing}' does not exist" in result.stderr


def test_cuda_without_a_gpu_is_a_clear_startup_error():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    result = subprocess.run(
        [sys.executable, "-m", "svc_embedder", "--port", "0", "--metrics-port", "-1", "--device", "cuda"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "AIWORKER_EMBEDDER_LOG_FORMAT": "json"},
    )
    assert result.returncode == 2
    assert "no CUDA device is available" in result.stderr
