"""Child processes under supervision. ManagedProcess: output to its own log
file, stopped (TERM, then KILL, the whole process group) on request, with the
log's tail in every failure message. Supervisor: restarts a component that died,
with backoff, and gives up on one that keeps dying before it is ready. Used by
the local launcher and by the tests."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol


class ManagedProcess:
    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        env: dict[str, str] | None = None,
        cwd: str | Path | None = None,
        stop_signal: int = signal.SIGTERM,
    ) -> None:
        self.name = name
        self.stop_signal = stop_signal  # what asks it to stop (PostgreSQL: SIGINT, see postgres.py)
        self.argv = list(argv)
        self.log_path = log_path
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd
        self.proc: subprocess.Popen | None = None
        self.terminated = False  # TERM sent (a second one would hurry uvicorn's graceful stop)

    def start(self) -> ManagedProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=self.cwd,
            start_new_session=True,  # its own process group: stop() reaches its children too
        )
        log.close()
        self.terminated = False
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def exit_reason(self) -> str:
        code = None if self.proc is None else self.proc.poll()
        if code is None:
            return "is running" if self.proc is not None else "was never started"
        if code < 0:
            return f"was killed by {signal.Signals(-code).name}"
        return f"exited with {code}"

    def log_tail(self, lines: int = 40) -> str:
        return log_tail(self.log_path, lines)

    def note(self, line: str) -> None:
        note(self.log_path, line)

    def wait_until(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode} before {what}:\n{self.log_tail()}")
            try:
                if ready():
                    return
            except Exception:  # noqa: BLE001 - not ready yet
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{self.name}: no {what} after {timeout:.0f}s:\n{self.log_tail()}")

    def signal(self, sig: int) -> None:
        if self.alive():
            os.killpg(self.proc.pid, sig)

    def terminate(self) -> None:
        """Its stop signal (TERM) to its process group, not waiting (several stop at once;
        stop() then waits)."""
        if self.alive() and not self.terminated:
            try:
                os.killpg(self.proc.pid, self.stop_signal)
            except ProcessLookupError:
                pass
            self.terminated = True

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.proc is None:
            return None
        if self.alive():
            self.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        # Children that outlived their leader (e.g. a pool child) go too.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        return self.proc.returncode

    def kill(self) -> None:
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def note(path: Path, line: str) -> None:
    """A line of ours in a component's log (where a restart happened, and why)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as log:
        log.write(f"--- aiworker-local {datetime.now().isoformat(timespec='seconds')}: {line}\n")


class Restartable(Protocol):
    """What the supervisor needs of a component: a ManagedProcess, or the embedded PostgreSQL."""

    name: str
    log_path: Path

    def start(self) -> object: ...
    def stop(self) -> object: ...
    def alive(self) -> bool: ...
    def exit_reason(self) -> str: ...
    def log_tail(self, lines: int = 40) -> str: ...
    def note(self, line: str) -> None: ...


@dataclass(frozen=True)
class RestartPolicy:
    """Like compose's `restart: unless-stopped`, with a limit. A component that dies is
    started again after `first_delay`, doubling at each death up to `max_delay`; once it
    stayed up `stable_after` seconds after being ready, the next death starts from
    `first_delay` again. One that dies before it is ready `failed_starts` times in a row is
    given up: a bad setting or a port taken fails the same way each time."""

    first_delay: float = 1.0
    max_delay: float = 30.0
    stable_after: float = 60.0
    failed_starts: int = 3
    settle: float = 5.0  # a component without a readiness probe is ready after this long alive

    def delay(self, deaths: int) -> float:
        return min(self.first_delay * 2 ** max(deaths - 1, 0), self.max_delay)


class GaveUp(RuntimeError):
    def __init__(self, component: str, reason: str, log_tail: str, log_path: Path) -> None:
        super().__init__(f"{component}: {reason}")
        self.component = component
        self.reason = reason
        self.log_tail = log_tail
        self.log_path = log_path


@dataclass
class _Watched:
    process: Restartable
    ready: Callable[[], bool] | None
    started: float
    ready_since: float | None = None
    deaths: int = 0  # since it last stayed up `stable_after`: sets the delay
    failed_starts: int = 0  # deaths before it was ready, in a row
    restart_at: float | None = None
    restarts: int = 0


class Supervisor:
    """Watches started components; `check()` (called in the launcher's loop) notes deaths and
    readiness, restarts what is due and raises GaveUp for a component that keeps failing to start."""

    def __init__(self, say: Callable[[str], None] = print, policy: RestartPolicy | None = None) -> None:
        self.say = say
        self.policy = policy or RestartPolicy()
        self.watched: dict[str, _Watched] = {}

    def watch(self, process: Restartable, ready: Callable[[], bool] | None = None) -> None:
        """`process` is started; `ready` says when it is (None: alive for `policy.settle` seconds)."""
        self.watched[process.name] = _Watched(process, ready, time.monotonic())

    def is_ready(self, name: str) -> bool:
        watched = self.watched.get(name)
        return watched is not None and watched.restart_at is None and watched.ready_since is not None

    def restarts(self, name: str) -> int:
        return self.watched[name].restarts

    def check(self) -> None:
        for name, watched in self.watched.items():
            if watched.restart_at is not None:
                if time.monotonic() >= watched.restart_at:
                    self._restart(name, watched)
            elif not watched.process.alive():
                self._died(name, watched, watched.process.exit_reason())
            elif watched.ready_since is None and self._probe(watched):
                watched.ready_since = time.monotonic()
                watched.failed_starts = 0
                if watched.restarts:
                    self.say(f"{name} is ready again (restart {watched.restarts})")

    def _probe(self, watched: _Watched) -> bool:
        if watched.ready is None:
            return time.monotonic() - watched.started >= self.policy.settle
        try:
            return bool(watched.ready())
        except Exception:  # noqa: BLE001 - not ready yet
            return False

    def _died(self, name: str, watched: _Watched, reason: str) -> None:
        now = time.monotonic()
        if watched.ready_since is None:
            watched.failed_starts += 1
        elif now - watched.ready_since >= self.policy.stable_after:
            watched.deaths = 0
        watched.deaths += 1
        watched.ready_since = None
        process = watched.process
        if watched.failed_starts >= self.policy.failed_starts:
            why = f"{reason} before it was ready, at {watched.failed_starts} starts in a row; giving up"
            process.note(why)
            raise GaveUp(name, why, process.log_tail(20), process.log_path)
        delay = self.policy.delay(watched.deaths)
        watched.restart_at = now + delay
        process.note(f"{reason}; restarting in {delay:g}s")
        self.say(f"{name} {reason}; restarting in {delay:g}s (log: {process.log_path})")

    def _restart(self, name: str, watched: _Watched) -> None:
        watched.restart_at = None
        watched.restarts += 1
        watched.started = time.monotonic()
        try:
            watched.process.stop()  # what is left of the dead one (e.g. a worker's pool children)
            watched.process.start()
        except Exception as exc:  # noqa: BLE001 - a start that fails is a death at start
            self._died(name, watched, f"could not start ({str(exc).splitlines()[0] if str(exc) else exc!r})")
