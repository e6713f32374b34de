"""The local launcher: a start that fails names the component and shows its
log (one that dies at every start after its restarts); the demo flow; the
embedded Redis/PostgreSQL used when no URLs are configured. The whole system
running, supervised and stopped: test_launcher_supervision.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from aiworker_local.demo import run_demo
from aiworker_local.infra import EmbeddedPostgres, free_port, start_redis
from tests.support.keys import API_KEY

pytestmark = pytest.mark.slow  # starts the launcher and its components

BIN = Path(sys.executable).parent


def test_a_failed_start_names_the_component_and_shows_its_log(redis_url, tmp_path):
    env = {
        **os.environ,
        "AIWORKER_BROKER_URL": redis_url,
        "AIWORKER_DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nowhere",
    }
    result = subprocess.run(
        [str(BIN / "aiworker-local"), "up", "--port", str(free_port()), "--var-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 1
    assert "migrations failed to start" in result.stdout and "stopped every component" in result.stdout


def test_a_service_that_dies_at_every_start_is_given_up_named_with_its_log(redis_url, postgres_url, tmp_path):
    env = {
        **os.environ,
        "AIWORKER_BROKER_URL": redis_url,
        "AIWORKER_DATABASE_URL": postgres_url,
        "AIWORKER_PARSER_MAX_PAGES": "0",  # refused by the parser's settings, read by nothing else
        "COLUMNS": "200",
    }
    result = subprocess.run(
        [str(BIN / "aiworker-local"), "up", "--port", str(free_port()), "--var-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    # Restarted with backoff first (a transient failure would have passed), then given up.
    assert "parser exited with 2; restarting in 1s" in result.stdout, result.stdout
    assert "parser exited with 2; restarting in 2s" in result.stdout, result.stdout
    assert "parser failed to start: exited with 2 before it was ready, at 3 starts in a row; giving up" in result.stdout
    assert "max_pages" in result.stdout  # the tail of the parser's own log says why
    assert "stopped every component" in result.stdout
    assert "giving up" in (tmp_path / "logs" / "launcher.log").read_text()


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
