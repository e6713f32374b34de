"""The console entry point: flags, env settings, device errors, SIGTERM drain."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from grpc_health.v1 import health_pb2

from aiworker_local.infra import free_port
from aiworker_local.services import health_status, start_service

pytestmark = pytest.mark.slow  # starts aiworker-parser as a process

NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def test_help_lists_the_common_flags():
    out = subprocess.run(
        ["aiworker-parser", "--help"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]},
    )
    for flag in ("--host", "--port", "--metrics-port", "--device", "--max-pdf-bytes"):
        assert flag in out.stdout


def test_flags_win_over_environment(log_dir):
    env_port, flag_port = free_port(), free_port()
    service = start_service("parser", log_dir, port=flag_port, env={"AIWORKER_PARSER_PORT": str(env_port)})
    try:
        assert service.status() == health_pb2.HealthCheckResponse.SERVING
        assert f'"port": {flag_port}' in service.process.log_path.read_text()
    finally:
        service.stop()


def test_environment_settings_apply(log_dir):
    service = start_service("parser", log_dir, env={"AIWORKER_PARSER_MAX_PAGES": "7"})
    try:
        import grpc

        from aiworker.parser.v1 import parser_pb2_grpc
        from tests.parser.pdfs import sample_pdf
        from tests.parser.test_parser_service import parse

        with grpc.insecure_channel(service.address) as channel:
            reply = parse(parser_pb2_grpc.ParserStub(channel), sample_pdf(["p"] * 9))
        assert len(reply.pages) == 7
    finally:
        service.stop()


def test_cuda_on_a_cpu_only_service_is_a_clear_startup_error():
    result = subprocess.run(
        [sys.executable, "-m", "svc_parser", "--port", "0", "--device", "cuda"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "CPU only" in result.stderr


def test_sigterm_drains_then_stops(log_dir):
    service = start_service("parser", log_dir, "--drain-seconds", "3", "--grace-seconds", "1")
    service.process.signal(signal.SIGTERM)
    seen_not_serving = False
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline and not seen_not_serving:
        try:
            seen_not_serving = health_status(service.address, service.service_name) == NOT_SERVING
        except Exception:  # noqa: BLE001
            break
        time.sleep(0.1)
    assert seen_not_serving, "health never said NOT_SERVING while draining"
    assert service.process.proc.wait(20) == 0
    assert '"server_stopped"' in service.process.log_path.read_text()


def test_invalid_setting_is_a_clear_error_not_a_traceback():
    result = subprocess.run(
        [sys.executable, "-m", "svc_parser", "--port", "99999"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "invalid settings: port" in result.stderr and "Traceback" not in result.stderr
