"""A PostgreSQL server of our own, over TCP, from the pgserver package's
binaries (which ship pgvector): for a session whose local server lacks
pgvector, for the benchmarks, and for the hosts of tests/hosts (inside a
network namespace). pgserver initialises the data folder (as its own system
user when we are root); the server then runs with the address and port we
choose. The data folder is a temporary one of its own, outside pytest's
folders: pytest makes those readable by their owner only, which a server
running as another user could not enter."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from dataclasses import dataclass
from pathlib import Path

from aiworker_local.procs import ManagedProcess


@dataclass
class PostgresServer:
    process: ManagedProcess
    url: str  # SQLAlchemy (psycopg 3)
    pgdata: Path

    def stop(self) -> None:
        self.process.stop()
        shutil.rmtree(self.pgdata.parent, ignore_errors=True)


def start_postgres(
    host: str,
    port: int,
    log_path: Path,
    database: str = "aiworker",
    trusted: str = "127.0.0.1/32",
    wrap: list[str] | None = None,
) -> PostgresServer:
    """The server, started; the caller waits for it to answer (from where it is reachable).
    Clients from `trusted` need no password."""
    import pgserver
    from pgserver._commands import POSTGRES_BIN_PATH

    home = Path(tempfile.mkdtemp(prefix="aiworker-pg-"))
    os.chmod(home, 0o755)
    pgdata = home / "pgdata"
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    if database != "postgres":  # initdb's own
        server.psql(f'CREATE DATABASE "{database}";')
    user = server.system_user
    server.cleanup()
    with (pgdata / "pg_hba.conf").open("a") as hba:
        hba.write(f"\nhost all all {trusted} trust\n")
    command = [
        str(POSTGRES_BIN_PATH / "postgres"),
        "-D",
        str(pgdata),
        "-c",
        f"listen_addresses={host}",
        "-p",
        str(port),
        "-c",
        f"unix_socket_directories={pgdata}",
        "-c",
        "fsync=off",  # a test database: speed over durability
        "-c",
        "max_connections=200",
    ]
    argv = [*(wrap or []), *(["runuser", "-u", user, "--", *command] if user else command)]
    # SIGINT is PostgreSQL's fast shutdown: it ends the clients' sessions and stops. SIGTERM (a smart
    # shutdown) waits for every client to disconnect, and a caller's connection pool never does.
    process = ManagedProcess("postgres", argv, log_path, stop_signal=signal.SIGINT).start()
    return PostgresServer(process, f"postgresql+psycopg://postgres@{host}:{port}/{database}", pgdata)


def has_pgvector(admin_dsn: str) -> bool:
    import psycopg

    with psycopg.connect(admin_dsn, connect_timeout=3) as conn:
        return conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").fetchone() is not None
