"""The whole back end for an evaluation, on this machine and then stopped: a
private Redis, a PostgreSQL with pgvector (pgserver), the four model services and
a worker per queue (aiworker_local.stack), under var/eval/."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aiworker_local.infra import free_port, port_open, start_redis
from aiworker_local.postgres import start_postgres
from aiworker_local.stack import Stack

ROOT = Path(__file__).resolve().parents[2]
WORKDIR = ROOT / "var" / "eval"


@contextmanager
def running_stack(workdir: Path = WORKDIR) -> Iterator[Stack]:
    logs = workdir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    redis, redis_url = start_redis(workdir / "redis", log_path=logs / "redis.log")
    port = free_port()
    postgres = start_postgres("127.0.0.1", port, logs / "postgres.log")
    stack = Stack(logs, redis_url, postgres.url, workdir / "blobs")
    try:
        postgres.process.wait_until(lambda: port_open("127.0.0.1", port), 60, "PostgreSQL accepting connections")
        stack.start(max_retries=12, retry_backoff_seconds=0.5, retry_backoff_max_seconds=2)
        yield stack
    finally:
        stack.stop()
        postgres.stop()
        redis.stop()
        shutil.rmtree(workdir / "blobs", ignore_errors=True)
