"""Celery workers (and beat) as real processes via the console scripts, with
the orchestrator configured through AIWORKER_* environment variables."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from celery import Celery

from aiworker_local.procs import ManagedProcess
from svc_runtime.catalogue import SERVICES

BIN = Path(sys.executable).parent


def orchestrator_env(
    redis_url: str, postgres_url: str, blob_dir: Path, services: dict[str, str], **overrides: Any
) -> dict[str, str]:
    """AIWORKER_* variables for workers and test-side apps alike."""
    env = {
        "AIWORKER_BROKER_URL": redis_url,
        "AIWORKER_DATABASE_URL": postgres_url,
        "AIWORKER_BLOB_URL": str(blob_dir),
        "AIWORKER_LOG_FORMAT": "json",
    }
    for kind, address in services.items():
        env[SERVICES[kind].address_env] = address
    env.update({f"AIWORKER_{k.upper()}": str(v) for k, v in overrides.items()})
    return env


def start_worker(
    app: Celery,
    queues: str,
    env: dict[str, str],
    log_dir: Path,
    name: str,
    concurrency: int = 2,
    pool: str = "prefork",
    timeout: float = 60,
) -> ManagedProcess:
    hostname = f"{name}@test"
    argv = [
        str(BIN / "aiworker-worker"),
        "--queues",
        queues,
        "--concurrency",
        str(concurrency),
        "--pool",
        pool,
        "--hostname",
        hostname,
    ]
    proc = ManagedProcess(f"worker-{name}", argv, log_dir / f"worker-{name}.log", env=env).start()
    proc.hostname = hostname  # type: ignore[attr-defined]
    proc.wait_until(
        lambda: bool(app.control.inspect(destination=[hostname], timeout=1).ping()), timeout, "worker answering ping"
    )
    return proc
