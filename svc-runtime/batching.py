"""Dynamic batching for any service: concurrent callers' items are gathered into
one call of a synchronous batch function (e.g. `model.encode`), and each caller
gets back exactly its own results, in order.

    batcher = DynamicBatcher(model.encode_batch, max_batch_size=64, max_queue_delay_ms=5,
                             max_queued_items=4096, cost=lambda text: text.tokens, max_batch_cost=8192,
                             observer=BatchMetrics(service_metrics, "aiworker_demo_batch", with_cost=True))
    results = await batcher.submit(texts)      # one caller; len(results) == len(texts)

How a batch forms (as TEI's and Triton's batchers do, without idle waiting):
when the model is idle, a request runs at once, with whatever else is queued at
that moment. Requests arriving while a batch computes queue up and form the
next batch, which starts as soon as the model is free. Only a batch whose first
request arrived while the model was busy may then wait, up to
`max_queue_delay_ms` counted from that request's arrival, for company (or until
it is full); a request that finds the model idle never waits for company.

A batch is bounded by `max_batch_size` items and, with a `cost` function (e.g.
tokens per text), by `max_batch_cost` (TEI's max_batch_tokens). It takes whole
requests from the head of the queue (first come, first served) while they fit.
A request is never split across batches, except one that alone exceeds a
bound: that one runs alone, in chunks within the bounds, and its results are
reassembled. With `cost`, the batch function gets the batch's items sorted by
cost (so a function that pads per chunk pads little); results are put back in
each caller's order. The batch function runs off the event loop, in a dedicated
single-thread executor, so one batch computes at a time and the loop keeps
accepting calls; while it computes, the next batch gathers.

Admission: a request is refused with ResourceExhausted when the items already
waiting plus its own would exceed `max_queued_items` (a request larger than the
bound alone is still taken when nothing waits, else it could never run). Items
of the batch being computed do not count as waiting.

Failure and cancellation: an exception from the batch function fails only the
callers whose items were in that batch. A caller that is cancelled while waiting
(e.g. its RPC was cancelled) leaves the queue at once and is never computed.
`run_exclusive(fn)` runs a function on the batch thread between batches (e.g.
unloading the model).

Metrics: the batcher reports queue length, waits and batches to an `observer`
(BatchObserver); svc_runtime.metrics.BatchMetrics records them in the service's
Prometheus registry, so this module needs no prometheus_client.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from svc_runtime.errors import ResourceExhausted, Unavailable

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


@dataclass(eq=False)
class _Request(Generic[T, R]):
    items: Sequence[T]
    future: asyncio.Future
    cost: int = 0
    arrived_busy: bool = False  # the model was computing when it arrived
    enqueued: float = field(default_factory=time.perf_counter)


class BatchObserver:
    """What the batcher reports as it works (the service layer turns it into
    metrics, see svc_runtime.metrics.BatchMetrics); this one reports nowhere."""

    def queued(self, items: int) -> None:
        """Items now waiting for a batch."""

    def waited(self, seconds: float) -> None:
        """One request waited this long before its batch started."""

    def computed(self, items: int, cost: int, seconds: float) -> None:
        """One call of the batch function: its items, their total cost (0 without a cost function), its time."""


class DynamicBatcher(Generic[T, R]):
    """Gathers concurrent `submit()` calls into batches for `batch_fn`.

    `batch_fn(items) -> results` is synchronous, is given at most
    `max_batch_size` items (of total cost at most `max_batch_cost`, when a
    `cost` function is given) and must return exactly one result per item, in
    order. Create and use the batcher inside one running event loop.
    """

    def __init__(
        self,
        batch_fn: Callable[[list[T]], Sequence[R]],
        *,
        max_batch_size: int,
        max_queue_delay_ms: float,
        max_queued_items: int,
        cost: Callable[[T], int] | None = None,
        max_batch_cost: int | None = None,
        observer: BatchObserver | None = None,
        name: str = "batcher",
    ) -> None:
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        if max_queue_delay_ms < 0:
            raise ValueError("max_queue_delay_ms must not be negative")
        if max_queued_items < 1:
            raise ValueError("max_queued_items must be at least 1")
        if (cost is None) != (max_batch_cost is None):
            raise ValueError("cost and max_batch_cost go together")
        if max_batch_cost is not None and max_batch_cost < 1:
            raise ValueError("max_batch_cost must be at least 1")
        self.batch_fn = batch_fn
        self.max_batch_size = max_batch_size
        self.max_queue_delay = max_queue_delay_ms / 1000.0
        self.max_queued_items = max_queued_items
        self.cost = cost
        self.max_batch_cost = max_batch_cost
        self.name = name
        self.observer = observer or BatchObserver()
        self._queue: collections.deque[_Request[T, R]] = collections.deque()
        self._queued_items = 0
        self._queued_cost = 0
        self._arrived = asyncio.Event()
        self._executor: ThreadPoolExecutor | None = None
        self._worker: asyncio.Task | None = None
        self._running: list[_Request[T, R]] = []  # the batch being computed
        self._busy = False  # the batch function is running
        self._closed = False

    # -- caller side -------------------------------------------------------

    @property
    def queued_items(self) -> int:
        """Items waiting for a batch (not counting the batch being computed)."""
        return self._queued_items

    async def submit(self, items: Sequence[T]) -> list[R]:
        """Results for `items`, in order, computed in a batch with other callers'."""
        if self._closed:
            raise Unavailable(f"{self.name} is shutting down")
        if not items:
            return []
        waiting = self._queued_items
        if waiting and waiting + len(items) > self.max_queued_items:
            raise ResourceExhausted(
                f"{self.name} queue is full: {waiting} items wait, this request adds {len(items)}, "
                f"the bound is {self.max_queued_items}; retry later"
            )
        self._ensure_worker()
        cost = sum(self.cost(item) for item in items) if self.cost is not None else 0
        future = asyncio.get_running_loop().create_future()
        request: _Request[T, R] = _Request(items, future, cost, self._busy)
        self._queue.append(request)
        self._queued_cost += cost
        self._set_queued(self._queued_items + len(items))
        self._arrived.set()
        try:
            return await request.future
        except asyncio.CancelledError:
            self._drop(request)
            raise

    async def run_exclusive(self, fn: Callable[[], R]) -> R:
        """Runs `fn` on the batch thread, between two batches."""
        self._ensure_worker()
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    def _drop(self, request: _Request[T, R]) -> None:
        """Removes a cancelled caller that is still waiting."""
        try:
            self._queue.remove(request)
        except ValueError:
            return  # already taken into a batch; its result is discarded
        self._dequeued(request)

    def _dequeued(self, request: _Request[T, R]) -> None:
        self._queued_cost -= request.cost
        self._set_queued(self._queued_items - len(request.items))

    def _set_queued(self, value: int) -> None:
        self._queued_items = value
        self.observer.queued(value)

    # -- lifecycle ---------------------------------------------------------

    def _ensure_worker(self) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self.name)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._run(), name=f"{self.name}-worker")

    async def close(self) -> None:
        """Refuses new calls, fails waiting ones with Unavailable, stops the worker."""
        self._closed = True
        running = list(self._running)  # the worker's cancellation clears _running
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
        stopped = Unavailable(f"{self.name} is shutting down")
        for request in [*running, *self._queue]:
            _fail(request, stopped)
        self._queue.clear()
        self._running = []
        self._queued_cost = 0
        self._set_queued(0)
        if self._executor is not None:
            # A batch still computing finishes on its own thread; the loop does not wait for it.
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    # -- worker side -------------------------------------------------------

    async def _run(self) -> None:
        while True:
            if not self._queue:
                self._arrived.clear()
                await self._arrived.wait()
                continue
            try:
                if self._queue[0].arrived_busy:
                    await self._gather()
                self._running = self._take()
                if self._running:
                    self._busy = True
                    await self._process(self._running)
            except Exception as exc:
                log.error("batcher_error", extra={"batcher": self.name}, exc_info=exc)
                for request in self._running:
                    _fail(request, exc)
            finally:
                self._running = []
                self._busy = False

    def _full(self) -> bool:
        if self._queued_items >= self.max_batch_size:
            return True
        return self.max_batch_cost is not None and self._queued_cost >= self.max_batch_cost

    async def _gather(self) -> None:
        """For a batch that formed while the model was busy: waits until it is full
        or its first request has waited max_queue_delay, whichever is first."""
        deadline = self._queue[0].enqueued + self.max_queue_delay
        while self._queue and not self._full():
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                return

    def _take(self) -> list[_Request[T, R]]:
        """Whole requests from the head while they fit (at least one)."""
        batch: list[_Request[T, R]] = []
        size = cost = 0
        while self._queue:
            head = self._queue[0]
            if head.future.done():  # cancelled between its drop and now
                self._queue.popleft()
                self._dequeued(head)
                continue
            if batch and (size + len(head.items) > self.max_batch_size or not self._cost_fits(cost + head.cost)):
                break
            self._queue.popleft()
            self._dequeued(head)
            batch.append(head)
            size += len(head.items)
            cost += head.cost
            if size >= self.max_batch_size or (self.max_batch_cost is not None and cost >= self.max_batch_cost):
                break
        return batch

    def _cost_fits(self, cost: int) -> bool:
        return self.max_batch_cost is None or cost <= self.max_batch_cost

    async def _process(self, batch: list[_Request[T, R]]) -> None:
        started = time.perf_counter()
        for request in batch:
            self.observer.waited(started - request.enqueued)
        if len(batch) == 1 and (len(batch[0].items) > self.max_batch_size or not self._cost_fits(batch[0].cost)):
            await self._process_chunked(batch[0])
            return
        items: list[T] = [item for request in batch for item in request.items]
        try:
            results = await self._call(items)
        except Exception as exc:  # noqa: BLE001 - handed to exactly this batch's callers
            log.warning(
                "batch_failed",
                extra={"batcher": self.name, "items": len(items), "callers": len(batch), "error": repr(exc)},
            )
            for request in batch:
                _fail(request, exc)
            return
        offset = 0
        for request in batch:
            count = len(request.items)
            _resolve(request, list(results[offset : offset + count]))
            offset += count

    async def _process_chunked(self, request: _Request[T, R]) -> None:
        items = list(request.items)
        order = self._by_cost(items)
        arranged = items if order is None else [items[i] for i in order]
        results: list[R] = []
        for chunk in self._chunks(arranged):
            if request.future.done():  # the caller went away: stop computing for it
                return
            try:
                results.extend(await self._call(chunk))
            except Exception as exc:  # noqa: BLE001
                log.warning(
                    "batch_failed",
                    extra={"batcher": self.name, "items": len(request.items), "callers": 1, "error": repr(exc)},
                )
                _fail(request, exc)
                return
        _resolve(request, results if order is None else _restore(results, order))

    def _chunks(self, items: Sequence[T]) -> list[list[T]]:
        """Consecutive runs of items within both bounds (an item over the cost bound alone is a chunk)."""
        chunks: list[list[T]] = [[]]
        cost = 0
        for item in items:
            item_cost = self.cost(item) if self.cost is not None else 0
            if chunks[-1] and (len(chunks[-1]) >= self.max_batch_size or not self._cost_fits(cost + item_cost)):
                chunks.append([])
                cost = 0
            chunks[-1].append(item)
            cost += item_cost
        return chunks

    async def _call(self, items: list[T]) -> Sequence[R]:
        """The batch function on the batch thread; with a cost function, on the items
        sorted by cost (results returned in the items' order)."""
        order = self._by_cost(items)
        arranged = items if order is None else [items[i] for i in order]
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        try:
            results = await loop.run_in_executor(self._executor, self.batch_fn, arranged)
        finally:
            cost = sum(self.cost(item) for item in items) if self.cost is not None else 0
            self.observer.computed(len(items), cost, time.perf_counter() - started)
        if len(results) != len(items):
            raise RuntimeError(f"batch function returned {len(results)} results for {len(items)} items")
        return results if order is None else _restore(results, order)

    def _by_cost(self, items: Sequence[T]) -> list[int] | None:
        """Indexes of `items` by ascending cost (None without a cost function)."""
        if self.cost is None:
            return None
        cost = self.cost
        return sorted(range(len(items)), key=lambda i: cost(items[i]))


def _restore(results: Sequence[R], order: list[int]) -> list[R]:
    """Results computed for items in `order` → results in the items' own order."""
    restored: list[R] = [None] * len(order)  # type: ignore[list-item]
    for position, index in enumerate(order):
        restored[index] = results[position]
    return restored


def _resolve(request: _Request, results: list) -> None:
    if not request.future.done():
        request.future.set_result(results)


def _fail(request: _Request, exc: BaseException) -> None:
    if not request.future.done():
        request.future.set_exception(exc)
