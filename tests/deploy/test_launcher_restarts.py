"""The launcher's supervision and its kept Redis, on real processes but no models
(seconds): restarts with doubling delays that reset once a component stayed up,
giving up on one that dies at every start (named, with its log), Redis on the
same port with its data after a kill and after a new run, a port taken by
something else refused clearly, PostgreSQL (pgserver) restarted after its
postmaster is killed, and the launcher's refusals that need no models."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
import redis

from aiworker_local.infra import EmbeddedPostgres, PortTaken, free_port, redis_answers, start_kept_redis, start_redis
from aiworker_local.procs import GaveUp, ManagedProcess, RestartPolicy, Supervisor

pytestmark = pytest.mark.slow  # starts the launcher's Redis and PostgreSQL

BIN = Path(sys.executable).parent

# Serves until killed when `mode` says so; else fails as a bad setting would, at once.
COMPONENT = """
import os, pathlib, sys, time
here = pathlib.Path(sys.argv[1])
if (here / "mode").read_text() == "crash":
    sys.exit("bad setting: max_pages must be >= 1")
(here / f"ready-{os.getpid()}").touch()
time.sleep(600)
"""


def supervise_until(supervisor: Supervisor, done: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "supervision did not get there in time"
        supervisor.check()
        time.sleep(0.05)


def test_restarts_double_their_delay_reset_when_stable_and_give_up_on_a_component_dying_at_start(tmp_path):
    (tmp_path / "mode").write_text("serve")
    proc = ManagedProcess("svc", [sys.executable, "-c", COMPONENT, str(tmp_path)], tmp_path / "svc.log").start()
    said: list[str] = []
    policy = RestartPolicy(first_delay=0.2, max_delay=0.8, stable_after=1.5, failed_starts=3)
    supervisor = Supervisor(said.append, policy)
    supervisor.watch(proc, ready=lambda: (tmp_path / f"ready-{proc.pid}").exists())
    try:
        supervise_until(supervisor, lambda: supervisor.is_ready("svc"))

        def kill_and_see_it_back(restarts: int) -> None:
            os.kill(proc.pid, signal.SIGKILL)  # the leader only, as the OOM killer would
            supervise_until(supervisor, lambda: supervisor.restarts("svc") == restarts and supervisor.is_ready("svc"))

        kill_and_see_it_back(1)
        kill_and_see_it_back(2)  # killed again soon after: the delay doubles
        time.sleep(1.6)  # stayed up past stable_after: the next delay is the first again
        kill_and_see_it_back(3)
        (tmp_path / "mode").write_text("crash")
        os.kill(proc.pid, signal.SIGKILL)
        with pytest.raises(GaveUp) as gave_up:
            supervise_until(supervisor, lambda: False)
    finally:
        proc.stop()
    delays = [line.split("restarting in ")[1].split()[0] for line in said if "restarting in" in line]
    # kills: 0.2, 0.4 (soon after), 0.2 (after a stable run); then killed soon after (0.4) and
    # two deaths at start (0.8, capped at 0.8); the third death at start gives up.
    assert delays == ["0.2s", "0.4s", "0.2s", "0.4s", "0.8s", "0.8s"], said
    assert said[0] == f"svc was killed by SIGKILL; restarting in 0.2s (log: {tmp_path / 'svc.log'})"
    assert "svc is ready again (restart 1)" in said
    assert gave_up.value.component == "svc"
    assert gave_up.value.reason == "exited with 1 before it was ready, at 3 starts in a row; giving up"
    assert "bad setting: max_pages must be >= 1" in gave_up.value.log_tail  # the component's own words
    log = (tmp_path / "svc.log").read_text()
    assert "aiworker-local" in log and "was killed by SIGKILL; restarting in 0.2s" in log  # marked in its log


def test_kept_redis_keeps_its_port_and_data_when_killed_restarted_and_run_again(tmp_path):
    port = free_port()
    proc, url = start_kept_redis(tmp_path / "redis", port, tmp_path / "redis.log")
    supervisor = Supervisor(lambda _: None, RestartPolicy(first_delay=0.2))
    supervisor.watch(proc, ready=lambda: redis_answers(url))
    try:
        assert url == f"redis://127.0.0.1:{port}/0"
        client = redis.Redis.from_url(url)
        client.lpush("gpu_queue", "a message")  # a queue, as kombu keeps it
        client.set("celery-task-meta-1", "a result")
        time.sleep(1.5)  # appendfsync everysec: on disk within a second
        os.killpg(proc.pid, signal.SIGKILL)
        supervise_until(supervisor, lambda: supervisor.restarts("redis") == 1 and supervisor.is_ready("redis"))
        assert client.lrange("gpu_queue", 0, -1) == [b"a message"]
        client.lpush("gpu_queue", "another")
        client.close()
    finally:
        proc.stop()  # as `make up` stops it: TERM, and Redis writes its file out
    again, url_again = start_kept_redis(tmp_path / "redis", port, tmp_path / "redis.log")  # the next run
    try:
        assert url_again == url
        client = redis.Redis.from_url(url)
        assert client.lrange("gpu_queue", 0, -1) == [b"another", b"a message"]
        assert client.get("celery-task-meta-1") == b"a result"
        assert client.config_get("appendfsync") == {"appendfsync": "everysec"}
        client.close()
    finally:
        again.stop()


def test_kept_redis_replaces_a_leftover_of_its_own_and_refuses_a_port_taken_by_anything_else(tmp_path):
    port = free_port()
    # A leftover: a redis-server of a launcher that was killed, on the same folder.
    leftover, url = start_redis(tmp_path / "redis", port, tmp_path / "old.log", persistent=True, fsync="everysec")
    redis.Redis.from_url(url).set("kept", "yes")
    proc, url = start_kept_redis(tmp_path / "redis", port, tmp_path / "redis.log")
    try:
        leftover.proc.wait(10)  # shut down, not killed: it wrote its data out
        assert redis.Redis.from_url(url).get("kept") == b"yes"
    finally:
        proc.stop()

    other, _ = start_redis(tmp_path / "other", port)  # someone else's Redis on our port
    try:
        with pytest.raises(PortTaken, match=f"port {port} is taken by another Redis .*other"):
            start_kept_redis(tmp_path / "redis", port)
        assert other.alive()  # left alone
    finally:
        other.stop()

    with socket.socket() as sock:  # not a Redis at all
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # our connections' TIME_WAITs
        sock.bind(("127.0.0.1", port))
        sock.listen()
        with pytest.raises(PortTaken, match=f"port {port} is taken by something that is not a Redis of ours"):
            start_kept_redis(tmp_path / "redis", port)


def test_embedded_postgres_is_restarted_after_its_postmaster_is_killed(tmp_path):
    postgres = EmbeddedPostgres(tmp_path / "pgdata")
    uri = postgres.start()
    supervisor = Supervisor(lambda _: None, RestartPolicy(first_delay=0.2))
    supervisor.watch(postgres, ready=postgres.alive)
    plain = uri.replace("postgresql+psycopg://", "postgresql://", 1)
    try:
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute("CREATE TABLE kept (x int)")
            conn.execute("INSERT INTO kept VALUES (42)")
        os.kill(postgres.server.get_pid(), signal.SIGKILL)
        supervise_until(supervisor, lambda: supervisor.restarts("postgres") >= 1 and supervisor.is_ready("postgres"))
        assert postgres.uri == uri  # the components keep their URL
        with psycopg.connect(plain) as conn:
            assert conn.execute("SELECT x FROM kept").fetchone() == (42,)
    finally:
        postgres.stop()


def launcher(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AIWORKER_")}
    return subprocess.run(
        [str(BIN / "aiworker-local"), "up", "--port", str(free_port()), "--var-dir", str(tmp_path), *args],
        capture_output=True,
        text=True,
        env={**clean, "COLUMNS": "200", **env},
        timeout=120,
    )


def test_the_launcher_says_when_the_redis_port_is_taken_and_when_two_blob_stores_are_named(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = launcher(tmp_path, "--redis-port", str(port))
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"redis failed to start: port {port} is taken by something that is not a Redis of ours" in result.stdout
    assert "--redis-port N (AIWORKER_LOCAL_REDIS_PORT)" in result.stdout

    result = launcher(tmp_path, "--redis-port", str(free_port()), AIWORKER_LOCAL_BLOB_STORE="s3", AIWORKER_BLOB_URL="x")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "s3 failed to start: --blob-store s3 starts an S3 server of its own, but AIWORKER_BLOB_URL=x" in (
        result.stdout
    )
    assert "stopped every component" in result.stdout
