"""Continuous batching (iteration-level scheduling, as TGI's router and vLLM do).

One thread owns the model. Each iteration it
1. drops the sequences whose caller left or whose deadline passed,
2. admits waiting sequences first come, first served while the batch has room
   (`max_sequences`, the KV token budget `max_tokens` = prompt + max_new_tokens
   of every running sequence, and `max_prefill_tokens` of prompts per
   iteration), prefilling each newcomer alone (its first token comes out of it),
3. decodes every running sequence together: one forward pass, one token each,
4. hands each sequence its token; one that ends (EOS, stop string, length)
   leaves the batch at once and frees its cache.

Callers wait in a bounded queue: a submit that would leave more than
`max_queued` sequences waiting beyond the batch's free places is refused with
ResourceExhausted. After `idle_unload_seconds` without work (0 = never) the
model is unloaded; the next admission loads it again. `pause()` stops
admission and waits until the batch is empty (what Unload does).

Every torch computation of the model happens on this one thread, loading
included (`call()` runs a function there between iterations): libgomp keeps an
OpenMP thread pool per thread that ever ran a parallel region, and once two
pools exist on a 2-core machine its workers stop spinning between regions, which
made every decode step about twice as slow (measured: 37 → 68 ms).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Protocol, TypeVar

from svc_llm.runner import BatchRunner
from svc_llm.sequence import FinishReason, GenerationSequence
from svc_runtime.errors import ResourceExhausted, Unavailable

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class BatchLimits:
    max_sequences: int
    max_tokens: int
    max_prefill_tokens: int
    max_queued: int
    idle_unload_seconds: float = 0.0


class BatchObserver:
    """What the scheduler reports; the servicer turns it into Prometheus metrics."""

    def queue(self, running: int, waiting: int) -> None: ...

    def step(self, sequences: int, seconds: float) -> None: ...

    def prefill(self, tokens: int, seconds: float) -> None: ...

    def tokens(self, count: int) -> None: ...


class ModelHolder(Protocol):
    def runner(self) -> BatchRunner: ...  # loads the model when it is not loaded

    def loaded(self) -> bool: ...

    def unload_idle(self) -> None: ...


class Scheduler:
    def __init__(self, holder: ModelHolder, limits: BatchLimits, observer: BatchObserver | None = None) -> None:
        self.holder = holder
        self.limits = limits
        self.observer = observer or BatchObserver()
        self._cond = threading.Condition()
        self._waiting: collections.deque[GenerationSequence] = collections.deque()
        self._running: list[GenerationSequence] = []
        self._reserved_tokens = 0
        self._paused = 0
        self._closed = False
        self._last_work = time.monotonic()
        self._jobs: collections.deque[tuple[Callable[[], object], Future]] = collections.deque()
        self._thread: threading.Thread | None = None

    # -- callers' side -----------------------------------------------------

    def submit(self, sequence: GenerationSequence, bounded: bool = True) -> None:
        with self._cond:
            if self._closed:
                raise Unavailable("the LLM service is shutting down")
            free = max(0, self.limits.max_sequences - len(self._running))
            waiting = len(self._waiting)
            if bounded and waiting >= free + self.limits.max_queued:
                raise ResourceExhausted(
                    f"the model is busy: {len(self._running)} generations are running (batch limit "
                    f"{self.limits.max_sequences}) and {waiting} more are waiting (limit {self.limits.max_queued}); "
                    "retry later"
                )
            self._waiting.append(sequence)
            self._last_work = time.monotonic()
            self._start()
            self._cond.notify_all()
        self.observer.queue(len(self._running), len(self._waiting))

    def call(self, fn: Callable[[], T]) -> T:
        """Runs `fn` on the scheduler's thread (between iterations) and returns its result."""
        if threading.current_thread() is self._thread:
            return fn()
        future: Future = Future()
        with self._cond:
            if self._closed:
                raise Unavailable("the LLM service is shutting down")
            self._jobs.append((fn, future))
            self._start()
            self._cond.notify_all()
        return future.result()

    def touch(self) -> None:
        """Counts as activity for the idle unload (a call is on its way)."""
        with self._cond:
            self._last_work = time.monotonic()

    def pause(self) -> None:
        """Stops admitting and returns once no sequence runs. Pair with resume()."""
        with self._cond:
            self._paused += 1
            self._cond.notify_all()
            while self._running:
                self._cond.wait(0.05)

    def resume(self) -> None:
        with self._cond:
            self._paused -= 1
            self._cond.notify_all()

    def counts(self) -> tuple[int, int]:
        """(running, waiting)."""
        with self._cond:
            return len(self._running), len(self._waiting)

    def close(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        with self._cond:
            left = [*self._running, *self._waiting]
            self._running, self._waiting = [], collections.deque()
            jobs, self._jobs = list(self._jobs), collections.deque()
        for _, future in jobs:
            future.set_exception(Unavailable("the LLM service is shutting down"))
        for sequence in left:
            sequence.fail(Unavailable("the LLM service is shutting down"))

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="llm-scheduler", daemon=True)
            self._thread.start()

    # -- the scheduler thread ----------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                idle_unload = False
                while not self._closed and not (self._jobs or self._running or (self._waiting and not self._paused)):
                    timeout = self._idle_timeout()
                    if timeout is not None and timeout <= 0:
                        idle_unload = True
                        break
                    self._cond.wait(timeout)
                if self._closed:
                    return
                jobs, self._jobs = list(self._jobs), collections.deque()
            for fn, future in jobs:
                _run_job(fn, future)
            if idle_unload:
                self.holder.unload_idle()
                continue
            try:
                self._iterate()
            except Exception as exc:  # a failed step fails its sequences, not the thread
                log.error("batch_step_failed", extra={"error": repr(exc)}, exc_info=exc)
                with self._cond:
                    failed, self._running, self._reserved_tokens = self._running, [], 0
                    self._cond.notify_all()
                for sequence in failed:
                    sequence.fail(exc)
            self.observer.queue(*self.counts())

    def _idle_timeout(self) -> float | None:
        seconds = self.limits.idle_unload_seconds
        if not seconds or not self.holder.loaded():
            return None
        return self._last_work + seconds - time.monotonic()

    def _iterate(self) -> None:
        self._drop_interrupted()
        runner = self._runner()
        if runner is None:
            return
        self._admit(runner)
        if self._running:
            self._decode(runner)
        with self._cond:
            self._last_work = time.monotonic()

    def _runner(self) -> BatchRunner | None:
        try:
            return self.holder.runner()
        except Exception as exc:  # noqa: BLE001 - the model failed to load: tell the waiting callers
            with self._cond:
                failed, self._waiting = list(self._waiting), collections.deque()
            for sequence in failed:
                sequence.fail(exc)
            return None

    def _drop_interrupted(self) -> None:
        with self._cond:
            stopped = [s for s in (*self._running, *self._waiting) if s.should_stop()]
            for sequence in stopped:
                self._remove(sequence)
        for sequence in stopped:
            sequence.end(FinishReason.INTERRUPTED)

    def _admit(self, runner: BatchRunner) -> None:
        prefilled = 0
        limits = self.limits
        while True:
            with self._cond:
                if self._paused or not self._waiting:
                    return
                head = self._waiting[0]
                if len(self._running) >= limits.max_sequences:
                    return
                if self._reserved_tokens + head.reserved_tokens > limits.max_tokens:
                    return
                if prefilled and prefilled + head.prompt_tokens > limits.max_prefill_tokens:
                    return
                self._waiting.popleft()
                self._running.append(head)
                self._reserved_tokens += head.reserved_tokens
            prefilled += head.prompt_tokens
            self._prefill(runner, head)

    def _prefill(self, runner: BatchRunner, sequence: GenerationSequence) -> None:
        started = time.perf_counter()
        try:
            sequence.admit(runner.new_kv(sequence.reserved_tokens))
            logits = runner.prefill(sequence.kv, sequence.prompt_ids)
            token = sequence.choose(logits)
        except Exception as exc:  # noqa: BLE001 - this newcomer fails, the batch goes on
            log.warning("prefill_failed", extra={"error": repr(exc), "prompt_tokens": sequence.prompt_tokens})
            with self._cond:
                self._remove(sequence)
            sequence.fail(exc)
            return
        self.observer.prefill(sequence.prompt_tokens, time.perf_counter() - started)
        self.observer.tokens(1)
        self._take(sequence, token)

    def _decode(self, runner: BatchRunner) -> None:
        batch = list(self._running)  # only this thread changes the running list's members
        started = time.perf_counter()
        logits = runner.decode([s.kv for s in batch], [s.last_token for s in batch])
        # One argmax for every greedy row (one device sync), sampling per sequence.
        greedy = logits.argmax(dim=-1).tolist() if any(s.greedy for s in batch) else []
        tokens = [greedy[i] if s.greedy else s.choose(logits[i]) for i, s in enumerate(batch)]
        self.observer.step(len(batch), time.perf_counter() - started)
        self.observer.tokens(len(batch))
        for sequence, token in zip(batch, tokens):
            self._take(sequence, token)

    def _take(self, sequence: GenerationSequence, token: int) -> None:
        reason = sequence.accept(token)
        if reason is not None:
            with self._cond:
                self._remove(sequence)
            sequence.end(reason)

    def _remove(self, sequence: GenerationSequence) -> None:
        """Takes it out of the batch or the queue (call with the condition held)."""
        if sequence in self._running:
            self._running.remove(sequence)
            self._reserved_tokens -= sequence.reserved_tokens
            self._cond.notify_all()
        else:
            try:
                self._waiting.remove(sequence)
            except ValueError:
                pass


def _run_job(fn: Callable[[], object], future: Future) -> None:
    try:
        future.set_result(fn())
    except BaseException as exc:  # noqa: BLE001 - handed to the caller waiting on the future
        future.set_exception(exc)
