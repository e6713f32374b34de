"""A drainer on a daemon thread: what a worker's main process runs (started
on worker_ready, stopped on worker_shutdown with a last bounded drain)."""

from __future__ import annotations

import os
import threading

import structlog

from orchestrator.tracking.recording.drainer import Drainer

log = structlog.get_logger(__name__)

_fork_guard_installed = False


def _install_fork_guard() -> None:
    """The prefork pool forks new children while this thread may be writing a
    log line: a lock held at fork stays locked in the child forever. stdlib
    logging resets its locks after fork; structlog's per-file write locks are
    dropped here so the child makes fresh ones."""
    global _fork_guard_installed
    if _fork_guard_installed:
        return
    _fork_guard_installed = True

    def reset_structlog_locks() -> None:
        from structlog import _output

        locks = getattr(_output, "WRITE_LOCKS", None)
        if locks is not None:
            locks.clear()

    os.register_at_fork(after_in_child=reset_structlog_locks)


class DrainerThread:
    """A drainer on a daemon thread (a worker's main process runs one)."""

    def __init__(self, drainer: Drainer) -> None:
        self.drainer = drainer
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, name="tracking-drainer", daemon=True)

    def _run(self) -> None:
        log.info("tracking_drainer_started", consumer=self.drainer.consumer, stream=self.drainer.stream)
        self.drainer.run(self.stop_event)

    def start(self) -> DrainerThread:
        _install_fork_guard()
        self.thread.start()
        return self

    def alive(self) -> bool:
        return self.thread.is_alive()

    def stop(self, timeout: float = 10.0, final_drain_seconds: float = 5.0) -> None:
        """Stops the loop, then writes what the last tasks emitted (bounded; what
        cannot be written now stays in Redis for the next drainer)."""
        self.stop_event.set()
        self.thread.join(timeout)
        if not self.thread.is_alive() and final_drain_seconds > 0:
            try:
                self.drainer.drain_all(final_drain_seconds)
            except Exception as exc:  # noqa: BLE001
                log.warning("tracking_final_drain_incomplete", error=f"{type(exc).__name__}: {exc}")
        self.drainer.close()
        log.info("tracking_drainer_stopped", consumer=self.drainer.consumer, written=self.drainer.written)
