"""The local launcher: `aiworker-local up` starts every component, serves until
interrupted, then stops every child (no orphans, ports freed); the demo flow;
and the embedded Redis/PostgreSQL used when no URLs are configured."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import psycopg

from aiworker_local.demo import run_demo
from aiworker_local.infra import EmbeddedPostgres, port_open, start_redis
from tests.support.gateway import API_KEY
from tests.support.ports import free_port

BIN = Path(sys.executable).parent


def test_up_serves_then_stops_every_child_on_ctrl_c(redis_url, postgres_url, tmp_path):
    port = free_port()
    env = {**os.environ, "AIWORKER_BROKER_URL": redis_url, "AIWORKER_DATABASE_URL": postgres_url,
           "AIWORKER_API_KEY": "launcher-key"}
    launcher = subprocess.Popen([str(BIN / "aiworker-local"), "up", "--port", str(port), "--var-dir", str(tmp_path)],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    output = []
    try:
        for line in launcher.stdout:
            output.append(line)
            if "serving; Ctrl-C stops everything" in line or launcher.poll() is not None:
                break
        assert any("serving" in line for line in output), "".join(output)
        assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10).status_code == 200
        children = psutil.Process(launcher.pid).children(recursive=True)
        assert len(children) >= 7  # 4 services, 2 workers, beat, gateway (and pool children)
        assert {p.name() for p in children} & {"python3.11", "python", "aiworker-worker", "aiworker-gateway"}
        for name in ("parser", "embedder", "llm", "stt", "worker-cpu", "worker-gpu", "beat", "gateway"):
            assert (tmp_path / "logs" / f"{name}.log").stat().st_size > 0
        launcher.send_signal(signal.SIGINT)
        rest, _ = launcher.communicate(timeout=90)
        output.append(rest)
        assert launcher.returncode == 0, "".join(output)
        assert "stopped every component" in rest
        time.sleep(0.5)
        assert not [p for p in children if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        assert not port_open("127.0.0.1", port)
    finally:
        if launcher.poll() is None:
            launcher.kill()


def test_a_failed_start_names_the_component_and_shows_its_log(redis_url, tmp_path):
    env = {**os.environ, "AIWORKER_BROKER_URL": redis_url,
           "AIWORKER_DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nowhere"}
    result = subprocess.run([str(BIN / "aiworker-local"), "up", "--port", str(free_port()), "--var-dir", str(tmp_path)],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 1
    assert "migrations failed to start" in result.stdout and "stopped every component" in result.stdout


def test_a_worker_that_dies_at_start_is_named_with_its_log(redis_url, postgres_url, tmp_path):
    env = {**os.environ, "AIWORKER_BROKER_URL": redis_url, "AIWORKER_DATABASE_URL": postgres_url,
           "AIWORKER_WORKER_CONCURRENCY": "0"}  # refused by the workers' settings, read by nothing else
    result = subprocess.run([str(BIN / "aiworker-local"), "up", "--port", str(free_port()), "--var-dir", str(tmp_path)],
                            capture_output=True, text=True, env=env, timeout=400)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "worker-cpu failed to start" in result.stdout, result.stdout
    assert "worker_concurrency" in result.stdout  # the tail of the worker's own log says why
    assert "stopped every component" in result.stdout


def test_demo_flow_runs_every_pipeline_through_the_gateway(gateway):
    assert run_demo(gateway.url, API_KEY) is True


def test_embedded_redis_and_postgres(tmp_path):
    proc, url = start_redis(tmp_path / "redis")
    try:
        import redis

        assert redis.Redis.from_url(url).ping()
    finally:
        proc.stop()
    postgres = EmbeddedPostgres(tmp_path / "pgdata", database="demo")
    uri = postgres.start()
    try:
        with psycopg.connect(uri.replace("postgresql+psycopg://", "postgresql://", 1)) as conn:
            assert conn.execute("SELECT current_database()").fetchone() == ("demo",)
    finally:
        postgres.stop()
    again = EmbeddedPostgres(tmp_path / "pgdata", database="demo")  # reuses the folder and database
    try:
        assert again.start() == uri
    finally:
        again.stop()
