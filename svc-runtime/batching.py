"""Dynamic batching for any service: concurrent callers' items are gathered into
one call of a synchronous batch function (e.g. `model.encode`), and each caller
gets back exactly its own results, in order.

    batcher = DynamicBatcher(model.encode_batch, max_batch_size=64, max_queue_delay_ms=5,
                             max_queued_items=4096, metrics=servicer.metrics)
    results = await batcher.submit(texts)      # one caller; len(results) == len(texts)

How a batch forms: a background task waits for the first queued request, then
for up to `max_queue_delay_ms` (counted from that request's arrival) or until
`max_batch_size` items wait, whichever comes first. It then takes whole requests
from the head of the queue (first come, first served) while they fit. A request
is never split across batches, except one that alone holds more than
`max_batch_size` items: that one runs alone, in chunks, and its results are
reassembled. The batch function runs off the event loop, in a dedicated
single-thread executor, so one batch computes at a time and the loop keeps
accepting calls; while it computes, the next batch gathers.

Admission: a request is refused with ResourceExhausted when the items already
waiting plus its own would exceed `max_queued_items` (a request larger than the
bound alone is still taken when nothing waits, else it could never run). Items
of the batch being computed do not count as waiting.

Failure and cancellation: an exception from the batch function fails only the
callers whose items were in that batch. A caller that is cancelled while waiting
(e.g. its RPC was cancelled) leaves the queue at once and is never computed.
"""

from __future__ import annotations

import asyncio
import collections
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Generic, Sequence, TypeVar

from prometheus_client import Gauge

from svc_runtime.errors import ResourceExhausted, Unavailable
from svc_runtime.logs import get_logger
from svc_runtime.metrics import LATENCY_BUCKETS, ServiceMetrics

log = get_logger(__name__)

T = TypeVar("T")
R = TypeVar("R")

BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


@dataclass(eq=False)
class _Request(Generic[T, R]):
    items: Sequence[T]
    future: asyncio.Future
    enqueued: float = field(default_factory=time.perf_counter)


class _BatchMetrics:
    """Batch size (items), queue time and compute time (seconds) in the service's registry."""

    def __init__(self, metrics: ServiceMetrics, prefix: str) -> None:
        self.service = metrics.service
        self.size = metrics.histogram(
            f"{prefix}_size", "items per batch handed to the batch function", BATCH_SIZE_BUCKETS
        ).labels(self.service)
        self.queue = metrics.histogram(
            f"{prefix}_queue_seconds", "time a request waited before its batch started", LATENCY_BUCKETS
        ).labels(self.service)
        self.compute = metrics.histogram(
            f"{prefix}_compute_seconds", "time the batch function took per batch", LATENCY_BUCKETS
        ).labels(self.service)
        self.queued = Gauge(
            f"{prefix}_queued_items", "items waiting for a batch", ("service",), registry=metrics.registry
        ).labels(self.service)


class DynamicBatcher(Generic[T, R]):
    """Gathers concurrent `submit()` calls into batches for `batch_fn`.

    `batch_fn(items) -> results` is synchronous, is given at most
    `max_batch_size` items and must return exactly one result per item, in
    order. Create and use the batcher inside one running event loop.
    """

    def __init__(
        self,
        batch_fn: Callable[[list[T]], Sequence[R]],
        *,
        max_batch_size: int,
        max_queue_delay_ms: float,
        max_queued_items: int,
        metrics: ServiceMetrics | None = None,
        metric_prefix: str = "aiworker_batch",
        name: str = "batcher",
    ) -> None:
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        if max_queue_delay_ms < 0:
            raise ValueError("max_queue_delay_ms must not be negative")
        if max_queued_items < 1:
            raise ValueError("max_queued_items must be at least 1")
        self.batch_fn = batch_fn
        self.max_batch_size = max_batch_size
        self.max_queue_delay = max_queue_delay_ms / 1000.0
        self.max_queued_items = max_queued_items
        self.name = name
        self._metrics = _BatchMetrics(metrics, metric_prefix) if metrics is not None else None
        self._queue: collections.deque[_Request[T, R]] = collections.deque()
        self._queued_items = 0
        self._arrived = asyncio.Event()
        self._executor: ThreadPoolExecutor | None = None
        self._worker: asyncio.Task | None = None
        self._running: list[_Request[T, R]] = []  # the batch being computed
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
        request: _Request[T, R] = _Request(items, asyncio.get_running_loop().create_future())
        self._queue.append(request)
        self._set_queued(self._queued_items + len(items))
        self._arrived.set()
        try:
            return await request.future
        except asyncio.CancelledError:
            self._drop(request)
            raise

    def _drop(self, request: _Request[T, R]) -> None:
        """Removes a cancelled caller that is still waiting."""
        try:
            self._queue.remove(request)
        except ValueError:
            return  # already taken into a batch; its result is discarded
        self._set_queued(self._queued_items - len(request.items))

    def _set_queued(self, value: int) -> None:
        self._queued_items = value
        if self._metrics is not None:
            self._metrics.queued.set(value)

    # -- lifecycle ---------------------------------------------------------

    def _ensure_worker(self) -> None:
        if self._worker is None or self._worker.done():
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self.name)
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
                await self._gather()
                self._running = self._take()
                if self._running:
                    await self._process(self._running)
            except Exception as exc:  # noqa: BLE001 - a bug here must not hang the callers
                log.error("batcher_error", batcher=self.name, exc_info=exc)
                for request in self._running:
                    _fail(request, exc)
            finally:
                self._running = []

    async def _gather(self) -> None:
        """Waits until max_batch_size items wait or the head request has waited
        max_queue_delay, whichever is first."""
        deadline = self._queue[0].enqueued + self.max_queue_delay
        while self._queue and self._queued_items < self.max_batch_size:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except asyncio.TimeoutError:
                return

    def _take(self) -> list[_Request[T, R]]:
        """Whole requests from the head while they fit (at least one)."""
        batch: list[_Request[T, R]] = []
        size = 0
        while self._queue:
            head = self._queue[0]
            if head.future.done():  # cancelled between its drop and now
                self._queue.popleft()
                self._set_queued(self._queued_items - len(head.items))
                continue
            if batch and size + len(head.items) > self.max_batch_size:
                break
            self._queue.popleft()
            self._set_queued(self._queued_items - len(head.items))
            batch.append(head)
            size += len(head.items)
            if size >= self.max_batch_size:
                break
        return batch

    async def _process(self, batch: list[_Request[T, R]]) -> None:
        started = time.perf_counter()
        if self._metrics is not None:
            for request in batch:
                self._metrics.queue.observe(started - request.enqueued)
        if len(batch) == 1 and len(batch[0].items) > self.max_batch_size:
            await self._process_chunked(batch[0])
            return
        items: list[T] = [item for request in batch for item in request.items]
        try:
            results = await self._call(items)
        except Exception as exc:  # noqa: BLE001 - handed to exactly this batch's callers
            log.warning("batch_failed", batcher=self.name, items=len(items), callers=len(batch), error=repr(exc))
            for request in batch:
                _fail(request, exc)
            return
        offset = 0
        for request in batch:
            count = len(request.items)
            _resolve(request, list(results[offset:offset + count]))
            offset += count

    async def _process_chunked(self, request: _Request[T, R]) -> None:
        results: list[R] = []
        for start in range(0, len(request.items), self.max_batch_size):
            if request.future.done():  # the caller went away: stop computing for it
                return
            try:
                results.extend(await self._call(list(request.items[start:start + self.max_batch_size])))
            except Exception as exc:  # noqa: BLE001
                log.warning("batch_failed", batcher=self.name, items=len(request.items), callers=1,
                            error=repr(exc))
                _fail(request, exc)
                return
        _resolve(request, results)

    async def _call(self, items: list[T]) -> Sequence[R]:
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        try:
            results = await loop.run_in_executor(self._executor, self.batch_fn, items)
        finally:
            if self._metrics is not None:
                self._metrics.size.observe(len(items))
                self._metrics.compute.observe(time.perf_counter() - started)
        if len(results) != len(items):
            raise RuntimeError(f"batch function returned {len(results)} results for {len(items)} items")
        return results


def _resolve(request: _Request, results: list) -> None:
    if not request.future.done():
        request.future.set_result(results)


def _fail(request: _Request, exc: BaseException) -> None:
    if not request.future.done():
        request.future.set_exception(exc)
