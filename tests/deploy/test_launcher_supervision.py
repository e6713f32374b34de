"""`aiworker-local up` as `make up` runs it (embedded Redis, PostgreSQL and, with
--blob-store s3, SeaweedFS), one system shared by these checks in file order:
children inherit the S3 and OTEL settings; a resume pipeline keeps its blobs in
S3; the gpu worker SIGKILLed is restarted (said so, /readyz 503 then 200, a
pipeline afterwards succeeds); Ctrl-C 1.5 s after a batch was submitted stops
every child, and the next run completes the batch."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import httpx
import psutil
import pytest

from aiworker_local.demo import SAMPLES
from aiworker_local.infra import free_port, port_open
from gateway.cli import GatewayClient
from orchestrator.tracking.states import PIPELINE_TERMINAL

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]  # the first check waits for the whole start

BIN = Path(sys.executable).parent
API_KEY = "launcher-supervision-key"
COMPONENTS = ("parser", "embedder", "llm", "stt", "worker-cpu", "worker-gpu", "beat", "gateway", "redis", "s3")


@dataclass
class Launcher:
    process: subprocess.Popen
    var_dir: Path
    port: int
    redis_port: int
    env: dict[str, str] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)

    def wait_for(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            assert self.process.poll() is None, f"the launcher exited ({self.process.returncode}):\n{self.output}"
            assert time.monotonic() < deadline, f"no {text!r} after {timeout:.0f}s:\n{self.output}"
            time.sleep(0.2)

    def child(self, name: str) -> psutil.Process:
        """The component's own process (a direct child of the launcher)."""
        needle = {"worker-gpu": "worker-gpu@local", "gateway": "aiworker-gateway"}[name]
        (found,) = [p for p in psutil.Process(self.process.pid).children() if needle in " ".join(p.cmdline())]
        return found

    def client(self) -> GatewayClient:
        return GatewayClient(self.url, API_KEY, timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(90)
            except subprocess.TimeoutExpired:
                self.process.kill()


@pytest.fixture(scope="module")
def launched(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launcher]:
    var_dir = tmp_path_factory.mktemp("launcher-var")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIWORKER_", "AWS_", "OTEL_"))}
    env.update(
        {
            "AIWORKER_API_KEY": API_KEY,
            "AWS_ACCESS_KEY_ID": "launcher-test-key",  # the embedded S3's identity, and its clients' key
            "AWS_SECRET_ACCESS_KEY": "launcher-test-secret",
            "OTEL_SERVICE_NAME": "aiworker-launcher-test",  # read by nothing yet: passed through
            "COLUMNS": "200",  # rich wraps at 80 columns when not on a terminal
            # A stage whose worker died with the previous run is sent again soon (default 60 s).
            "AIWORKER_LOST_TASK_AFTER_SECONDS": "10",
            "AIWORKER_LOST_TASK_CHECK_SECONDS": "3",
            # The session's cache of the LLM's dequantized weights (tests/conftest.py), not the user's.
            "AIWORKER_LLM_GGUF_CACHE_DIR": os.environ["AIWORKER_LLM_GGUF_CACHE_DIR"],
        }
    )
    launcher = launch(var_dir, free_port(), free_port(), env)
    try:
        yield launcher
    finally:
        launcher.stop()


def launch(var_dir: Path, port: int, redis_port: int, env: dict[str, str]) -> Launcher:
    process = subprocess.Popen(
        [str(BIN / "aiworker-local"), "up", "--port", str(port), "--var-dir", str(var_dir)]
        + ["--redis-port", str(redis_port), "--blob-store", "s3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    launcher = Launcher(process, var_dir, port, redis_port, env=env)
    threading.Thread(target=launcher.read, daemon=True).start()
    return launcher


def run_resume(launcher: Launcher, timeout: float = 180) -> dict:
    client = launcher.client()
    pipeline_id = client.submit_file("resume", SAMPLES / "resume.pdf", {})["pipeline_id"]
    deadline = time.monotonic() + timeout
    while (status := client.status(pipeline_id))["overall_state"] not in PIPELINE_TERMINAL:
        assert time.monotonic() < deadline, f"resume pipeline not done after {timeout:.0f}s: {status}"
        time.sleep(0.5)
    return status


def test_up_starts_everything_and_every_child_inherits_the_s3_and_otel_settings(launched: Launcher):
    launched.wait_for("serving; Ctrl-C stops everything", 420)
    assert f"redis     embedded at redis://127.0.0.1:{launched.redis_port}/0" in launched.output
    assert httpx.get(f"{launched.url}/readyz", timeout=10).status_code == 200
    children = psutil.Process(launched.process.pid).children()
    assert len(children) == len(COMPONENTS), [" ".join(p.cmdline()) for p in children]
    endpoint = re.search(r"s3 +embedded at (http://\S+)", launched.output).group(1)
    aiworker = [p for p in children if p.name() not in ("redis-server", "weed")]  # redis rewrites its environ
    assert len(aiworker) == len(COMPONENTS) - 2
    for child in aiworker:
        env = child.environ()
        assert env.get("OTEL_SERVICE_NAME") == "aiworker-launcher-test", child.cmdline()
        assert env.get("AWS_ACCESS_KEY_ID") == "launcher-test-key", child.cmdline()
        assert env.get("AWS_SECRET_ACCESS_KEY") == "launcher-test-secret", child.cmdline()
        assert env.get("AIWORKER_BLOB_URL") == "s3://aiworker/blobs", child.cmdline()
        assert env.get("AIWORKER_S3_ENDPOINT_URL") == endpoint, child.cmdline()
        assert env.get("AWS_REGION") == "us-east-1", child.cmdline()  # the local default when unset
    assert (launched.var_dir / "redis" / "appendonlydir").is_dir()  # Redis keeps an append-only file


def test_a_resume_pipeline_keeps_its_blobs_in_the_embedded_s3(launched: Launcher):
    launched.wait_for("serving; Ctrl-C stops everything", 420)
    assert run_resume(launched)["overall_state"] == "SUCCESS"
    endpoint = re.search(r"s3 +embedded at (http://\S+)", launched.output).group(1)
    s3 = boto3.client(  # SeaweedFS takes the AWS_* pair in its environment as its admin identity
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="launcher-test-key",
        aws_secret_access_key="launcher-test-secret",
        region_name="us-east-1",
    )
    keys = [item["Key"] for item in s3.list_objects_v2(Bucket="aiworker", Prefix="blobs/").get("Contents", [])]
    digest = hashlib.sha256((SAMPLES / "resume.pdf").read_bytes()).hexdigest()
    assert f"blobs/sha256/{digest[:2]}/{digest}" in keys, keys  # the uploaded PDF
    assert len(keys) >= 2, keys  # and what the stages stored (page texts, vectors)
    assert not (launched.var_dir / "blobs").exists()


def test_a_killed_gpu_worker_is_restarted_and_the_system_serves_again(launched: Launcher):
    launched.wait_for("serving; Ctrl-C stops everything", 420)
    worker = launched.child("worker-gpu")
    worker.send_signal(signal.SIGKILL)  # the worker's main process only, as the OOM killer would
    launched.wait_for("worker-gpu was killed by SIGKILL; restarting in 1s", 15)

    def readyz() -> httpx.Response:
        return httpx.get(f"{launched.url}/readyz", timeout=10)

    deadline = time.monotonic() + 30
    while (response := readyz()).status_code != 503:
        assert time.monotonic() < deadline, "/readyz never said 503 while the gpu worker was down"
        time.sleep(0.2)
    assert "workers:gpu_queue" in response.json()["not_ready"], response.json()
    deadline = time.monotonic() + 120
    while readyz().status_code != 200:
        assert time.monotonic() < deadline, f"/readyz not 200 again after 120s:\n{launched.output}"
        time.sleep(0.5)
    launched.wait_for("worker-gpu is ready again (restart 1)", 30)
    assert launched.child("worker-gpu").pid != worker.pid
    assert "was killed by SIGKILL; restarting in 1s" in (launched.var_dir / "logs" / "worker-gpu.log").read_text()
    assert "worker-gpu was killed by SIGKILL" in (launched.var_dir / "logs" / "launcher.log").read_text()
    assert run_resume(launched)["overall_state"] == "SUCCESS"  # its stage runs on the gpu queue


def test_stopped_mid_batch_and_started_again_every_pipeline_completes(launched: Launcher):
    """Ctrl-C stops every child cleanly 1.5 s after a batch was submitted; the next run
    (same folder, same ports) finds the broker's data and the pipelines in flight finish."""
    launched.wait_for("serving; Ctrl-C stops everything", 420)
    client = launched.client()
    text = (SAMPLES / "ai_text.txt").read_text()
    batch = [client.submit("ai-pipeline", {"text": f"{text} ({i})"})["pipeline_id"] for i in range(6)]
    time.sleep(1.5)
    children = psutil.Process(launched.process.pid).children(recursive=True)
    launched.process.send_signal(signal.SIGINT)
    try:  # the tiers' stop timeouts add up to about 80 s when every one runs out
        launched.process.wait(150)
    except subprocess.TimeoutExpired:
        pytest.fail(f"aiworker-local up still stopping after 150 s:\n{launched.output[-4000:]}")
    time.sleep(0.5)  # the reader thread has the last lines
    assert launched.process.returncode == 0, launched.output
    assert "stopped every component" in launched.output
    assert not [p for p in children if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not port_open("127.0.0.1", launched.port)
    assert not port_open("127.0.0.1", launched.redis_port)

    again = launch(launched.var_dir, launched.port, launched.redis_port, launched.env)
    try:
        again.wait_for("serving; Ctrl-C stops everything", 420)
        client = again.client()
        deadline = time.monotonic() + 180
        while (states := [client.status(p)["overall_state"] for p in batch]) != ["SUCCESS"] * len(batch):
            assert "FAILURE" not in states, states
            assert time.monotonic() < deadline, f"the batch did not complete after the restart: {states}"
            time.sleep(1)
    finally:
        again.stop()
