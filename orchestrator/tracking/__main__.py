"""`python -m orchestrator.tracking drain [--once]`: a standalone drainer
(run it where workers run without their own drainer thread, or to flush the
outbox); several may run at once. `... outbox`: what waits in the outbox.
`... replay-dead`: puts dead-lettered entries back into the outbox (after
fixing what made PostgreSQL refuse them), in their original order."""

from __future__ import annotations

import argparse
import json
import signal
import threading
from collections.abc import Sequence

import redis

from orchestrator.settings import OrchestratorSettings
from orchestrator.tracking.recording.drainer import Drainer
from orchestrator.tracking.recording.spool import Spool
from svc_runtime.logs import configure_logging


def outbox_state(settings: OrchestratorSettings) -> dict[str, int]:
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=5)
    stream = settings.tracking_outbox
    try:
        pending = client.xpending(stream, settings.tracking_group)["pending"] if client.exists(stream) else 0
    except redis.ResponseError:  # no group yet
        pending = 0
    spool = Spool(settings.tracking_spool_dir)
    return {
        "entries": client.xlen(stream),
        "pending": int(pending),
        "dead": client.xlen(f"{stream}:dead"),
        "spooled_files": len(spool.pending_files()),
    }


def replay_dead(settings: OrchestratorSettings) -> dict[str, int]:
    """Moves every dead-lettered entry that still holds its records back to the outbox."""
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=5)
    stream = settings.tracking_outbox
    replayed = kept = 0
    for entry_id, fields in client.xrange(f"{stream}:dead"):
        if b"e" not in fields:  # nothing to replay (an entry that was never decodable)
            kept += 1
            continue
        with client.pipeline(transaction=True) as pipe:
            pipe.xadd(stream, {b"e": fields[b"e"]})
            pipe.xdel(f"{stream}:dead", entry_id)
            pipe.execute()
        replayed += 1
    return {"replayed": replayed, "kept": kept}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m orchestrator.tracking")
    sub = parser.add_subparsers(dest="command", required=True)
    drain = sub.add_parser("drain", help="move outbox events into PostgreSQL")
    drain.add_argument("--once", action="store_true", help="exit when the outbox is empty")
    drain.add_argument("--timeout", type=float, default=300.0, help="with --once: give up after this many seconds")
    sub.add_parser("outbox", help="print the outbox's size as JSON")
    sub.add_parser("replay-dead", help="put dead-lettered entries back into the outbox")
    args = parser.parse_args(argv)
    settings = OrchestratorSettings()
    configure_logging(settings.log_level, settings.log_format)
    if args.command == "outbox":
        print(json.dumps(outbox_state(settings)))
        return
    if args.command == "replay-dead":
        print(json.dumps(replay_dead(settings)))
        return
    drainer = Drainer.from_settings(settings)
    try:
        if args.once:
            print(json.dumps({"written": drainer.drain_all(args.timeout)}))
            return
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        drainer.run(stop)
    finally:
        drainer.close()


if __name__ == "__main__":
    main()
