"""A worker for the tracking tests: the orchestrator's app (settings from
AIWORKER_* env, tracking installed) plus probe tasks that fail, sleep past
their time limit, kill their own process, or take a `password` kwarg.

    python -m tests.tracking.probe_worker --hostname probe@test [--concurrency 2]
"""

from __future__ import annotations

import argparse
import os
import signal
import time
from typing import Any

import redis
from celery import Celery
from celery.exceptions import SoftTimeLimitExceeded

from orchestrator.assembly import tracked_app
from orchestrator.broker.routing import QUEUES
from orchestrator.settings import OrchestratorSettings


def register_probe_tasks(app: Celery) -> None:
    """Probe tasks, on this app only (shared=False keeps them off other apps)."""

    @app.task(name="probe.echo", shared=False)
    def echo(*args: Any, **kwargs: Any) -> dict[str, Any]:
        return {"args": list(args), "kwargs": kwargs}

    @app.task(name="probe.fail", shared=False)
    def fail(secret: str = "") -> None:
        raise ValueError(f"login refused, password={secret} api_key: {secret}")

    @app.task(name="probe.sleep", shared=False, bind=True, soft_time_limit=1, time_limit=2)
    def sleep(self: Any, seconds: float = 5) -> str:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:  # ignores the soft limit: only the hard limit stops it
            try:
                time.sleep(0.05)
            except SoftTimeLimitExceeded:
                pass
        return "slept"

    @app.task(name="probe.nap", shared=False)
    def nap(seconds: float = 0.5) -> str:
        time.sleep(seconds)
        return "rested"

    @app.task(name="probe.die_once", shared=False, bind=True)
    def die_once(self: Any) -> str:
        """Kills its pool process on the first delivery (the message is requeued:
        reject_on_worker_lost); succeeds on the redelivery."""
        client = redis.Redis.from_url(app.conf.broker_url)
        if client.set(f"probe:died:{self.request.id}", "1", nx=True, ex=600):
            os.kill(os.getpid(), signal.SIGKILL)
        return "survived"

    @app.task(name="probe.die", shared=False, bind=True, reject_on_worker_lost=False)
    def die(self: Any) -> None:
        """Kills its pool process; not requeued, so the parent reports WorkerLostError."""
        os.kill(os.getpid(), signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hostname", default="probe@test")
    parser.add_argument("--concurrency", type=int, default=2)
    args = parser.parse_args()
    app = tracked_app(OrchestratorSettings())
    register_probe_tasks(app)
    app.worker_main(
        [
            "worker",
            "-Q",
            ",".join(QUEUES),
            "-c",
            str(args.concurrency),
            "-P",
            "prefork",
            "-n",
            args.hostname,
            "-l",
            "INFO",
            "-E",
            "--without-gossip",
            "--without-mingle",
        ]
    )


if __name__ == "__main__":
    main()
