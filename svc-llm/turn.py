"""One generation at a time per model, with a bounded number of waiters."""

from __future__ import annotations

import threading
from typing import Callable

from svc_runtime.errors import ResourceExhausted


class GenerationTurn:
    """One generation at a time; at most `max_waiting` callers wait behind it,
    the next one gets ResourceExhausted. Waiters give up when should_stop()."""

    def __init__(self, max_waiting: int) -> None:
        self.max_waiting = max_waiting
        self._cond = threading.Condition()
        self._busy = False
        self._waiting = 0

    def acquire(self, should_stop: Callable[[], bool] = lambda: False, bounded: bool = True) -> bool:
        """True once it is this caller's turn, False when it stopped waiting."""
        with self._cond:
            if self._busy:
                if bounded and self._waiting >= self.max_waiting:
                    raise ResourceExhausted(
                        f"the model is busy: a generation is running and {self._waiting} more are waiting "
                        f"(limit {self.max_waiting}); retry later"
                    )
                self._waiting += 1
                try:
                    while self._busy:
                        if should_stop():
                            return False
                        self._cond.wait(0.05)  # wakes to look at should_stop()
                finally:
                    self._waiting -= 1
            self._busy = True
            return True

    def release(self) -> None:
        with self._cond:
            self._busy = False
            self._cond.notify()
