"""Console scripts: `aiworker-worker` (a worker on some queues) and
`aiworker-beat` (the periodic scheduler). Settings come from AIWORKER_* env."""

from __future__ import annotations

import argparse
import socket
from collections.abc import Sequence

from orchestrator.assembly import tracked_app
from orchestrator.broker.routing import QUEUES
from orchestrator.settings import OrchestratorSettings


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="aiworker-worker", description="Run a Celery worker on aiworker queues.")
    parser.add_argument(
        "--queues",
        "-Q",
        default=",".join(QUEUES),
        help=f"comma-separated queues to consume (default: {','.join(QUEUES)})",
    )
    parser.add_argument("--concurrency", "-c", type=int, help="pool size (default: AIWORKER_WORKER_CONCURRENCY)")
    parser.add_argument("--pool", "-P", default="prefork", choices=["prefork", "threads", "solo"])
    parser.add_argument("--hostname", "-n", help="node name (default: <queues>@<host>)")
    parser.add_argument("--loglevel", "-l", help="debug | info | warning | error (default: AIWORKER_LOG_LEVEL)")
    args = parser.parse_args(argv)
    queues = [q.strip() for q in args.queues.split(",") if q.strip()]
    unknown = sorted(set(queues) - set(QUEUES))
    if unknown:
        parser.error(f"unknown queue(s) {unknown}; known: {list(QUEUES)}")
    settings = OrchestratorSettings()
    app = tracked_app(settings)
    hostname = args.hostname or f"{'+'.join(queues)}@{socket.gethostname()}"
    app.worker_main(
        [
            "worker",
            "-Q",
            ",".join(queues),
            "-c",
            str(args.concurrency or settings.worker_concurrency),
            "-P",
            args.pool,
            "-n",
            hostname,
            "-l",
            args.loglevel or settings.log_level,
            *(["-E"] if settings.worker_send_events else []),
        ]
    )


def beat_main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="aiworker-beat", description="Run Celery beat (periodic cleanup).")
    parser.add_argument("--schedule", default="var/celerybeat-schedule", help="beat's state file")
    parser.add_argument("--loglevel", "-l", help="debug | info | warning | error (default: AIWORKER_LOG_LEVEL)")
    args = parser.parse_args(argv)
    settings = OrchestratorSettings()
    app = tracked_app(settings)
    app.start(["beat", "-s", args.schedule, "-l", args.loglevel or settings.log_level])
