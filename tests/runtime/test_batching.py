"""DynamicBatcher's pure logic with a trivial batch function: ordering, batch
formation, chunking, error isolation, overload, cancellation, shutdown."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from svc_runtime.batching import DynamicBatcher
from svc_runtime.errors import InvalidArgument, ResourceExhausted, Unavailable
from svc_runtime.metrics import BatchMetrics, ServiceMetrics


class Recorder:
    """A batch function that squares numbers and records each batch it got."""

    def __init__(self, delay: float = 0.0, fail_on: int | None = None) -> None:
        self.batches: list[list[int]] = []
        self.threads: set[str] = set()
        self.delay = delay
        self.fail_on = fail_on

    def __call__(self, items: list[int]) -> list[int]:
        self.batches.append(list(items))
        self.threads.add(threading.current_thread().name)
        if self.delay:
            time.sleep(self.delay)
        if self.fail_on is not None and self.fail_on in items:
            raise InvalidArgument(f"cannot square {self.fail_on}")
        return [x * x for x in items]


def run(coro):
    return asyncio.run(coro)


def make(fn, **kwargs) -> DynamicBatcher:
    options = {"max_batch_size": 8, "max_queue_delay_ms": 20, "max_queued_items": 1000, **kwargs}
    return DynamicBatcher(fn, **options)


def test_concurrent_callers_share_a_batch_and_each_gets_its_own_results_in_order():
    fn = Recorder()

    async def scenario():
        batcher = make(fn)
        requests = [[10 * c + i for i in range(c % 3 + 1)] for c in range(6)]  # 1..3 items each
        results = await asyncio.gather(*(batcher.submit(r) for r in requests))
        await batcher.close()
        return requests, results

    requests, results = run(scenario())
    for request, result in zip(requests, results):
        assert result == [x * x for x in request]
    assert sum(len(r) for r in requests) == 12
    # 12 items with max_batch_size 8: two batches, whole requests each, in arrival order.
    assert len(fn.batches) == 2
    assert [x for batch in fn.batches for x in batch] == [x for r in requests for x in r]
    assert all(len(batch) <= 8 for batch in fn.batches)


def test_a_request_is_never_split_unless_alone_it_exceeds_the_batch_size():
    fn = Recorder()

    async def scenario():
        batcher = make(fn, max_batch_size=4)
        a, b, c = [1, 2, 3], [4, 5], [6]
        results = await asyncio.gather(batcher.submit(a), batcher.submit(b), batcher.submit(c))
        await batcher.close()
        return results

    assert run(scenario()) == [[1, 4, 9], [16, 25], [36]]
    # [1,2,3] + [4,5] would be 5 > 4, so b starts the next batch, c joins it.
    assert fn.batches == [[1, 2, 3], [4, 5, 6]]


def test_an_oversized_request_runs_alone_in_chunks_and_is_reassembled():
    fn = Recorder()

    async def scenario():
        batcher = make(fn, max_batch_size=4)
        big = list(range(10))
        results = await asyncio.gather(batcher.submit(big), batcher.submit([100]))
        await batcher.close()
        return results

    big_result, small_result = run(scenario())
    assert big_result == [x * x for x in range(10)]
    assert small_result == [10000]
    assert fn.batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9], [100]]


def test_a_failing_batch_fails_only_its_own_callers():
    fn = Recorder(fail_on=3)

    async def scenario():
        batcher = make(fn, max_batch_size=4)
        outcomes = await asyncio.gather(
            batcher.submit([1, 2]),
            batcher.submit([3]),
            batcher.submit([4, 5, 6]),
            return_exceptions=True,
        )
        after = await batcher.submit([7])  # the batcher still works
        await batcher.close()
        return outcomes, after

    (first, second, third), after = run(scenario())
    # [1,2] and [3] were one batch, so both failed with the batch's error; [4,5,6] ran apart.
    assert isinstance(first, InvalidArgument) and isinstance(second, InvalidArgument)
    assert "cannot square 3" in str(second)
    assert third == [16, 25, 36]
    assert after == [49]


def test_a_full_queue_refuses_new_requests_and_recovers():
    fn = Recorder(delay=0.2)

    async def scenario():
        batcher = make(fn, max_batch_size=2, max_queue_delay_ms=0, max_queued_items=3)
        first = asyncio.ensure_future(batcher.submit([1, 2]))
        await asyncio.sleep(0.05)  # [1, 2] is computing now; the queue is empty
        waiting = [asyncio.ensure_future(batcher.submit([i])) for i in (3, 4, 5)]
        await asyncio.sleep(0)
        assert batcher.queued_items == 3
        with pytest.raises(ResourceExhausted, match="queue is full"):
            await batcher.submit([6])
        results = await asyncio.gather(first, *waiting)
        again = await batcher.submit([7])
        await batcher.close()
        return results, again

    results, again = run(scenario())
    assert results == [[1, 4], [9], [16], [25]]
    assert again == [49]


def test_a_request_larger_than_the_queue_bound_runs_when_nothing_waits():
    fn = Recorder()

    async def scenario():
        batcher = make(fn, max_batch_size=2, max_queued_items=3)
        result = await batcher.submit([1, 2, 3, 4, 5])
        await batcher.close()
        return result

    assert run(scenario()) == [1, 4, 9, 16, 25]


def test_a_cancelled_caller_leaves_the_queue_and_is_not_computed():
    fn = Recorder(delay=0.2)

    async def scenario():
        batcher = make(fn, max_batch_size=2, max_queue_delay_ms=0)
        busy = asyncio.ensure_future(batcher.submit([1, 2]))
        await asyncio.sleep(0.05)
        gone = asyncio.ensure_future(batcher.submit([99]))
        stays = asyncio.ensure_future(batcher.submit([3]))
        await asyncio.sleep(0)
        assert batcher.queued_items == 2
        gone.cancel()
        await asyncio.sleep(0)
        assert batcher.queued_items == 1
        results = await asyncio.gather(busy, stays)
        await batcher.close()
        return results

    assert run(scenario()) == [[1, 4], [9]]
    assert [99] not in fn.batches and all(99 not in batch for batch in fn.batches)


def test_the_batch_function_runs_off_the_event_loop_on_one_dedicated_thread():
    fn = Recorder(delay=0.05)

    async def scenario():
        batcher = make(fn, max_batch_size=1, max_queue_delay_ms=0, name="squarer")
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.005)
                ticks += 1

        task = asyncio.ensure_future(ticker())
        await asyncio.gather(*(batcher.submit([i]) for i in range(4)))
        task.cancel()
        await batcher.close()
        return ticks

    ticks = run(scenario())
    assert ticks >= 10  # the loop kept running while 4 × 50 ms of work ran
    assert len(fn.threads) == 1 and next(iter(fn.threads)).startswith("squarer")


def test_an_idle_model_runs_a_lone_request_at_once_whatever_the_delay():
    fn = Recorder(delay=0.005)
    metrics = ServiceMetrics("demo")

    async def scenario():
        batcher = make(fn, max_queue_delay_ms=200, observer=BatchMetrics(metrics, metric_prefix="demo_batch"))
        for i in range(20):  # one caller: each request finds the model idle
            assert await batcher.submit([i]) == [i * i]
        await batcher.close()

    run(scenario())
    value = metrics.registry.get_sample_value
    waits = value("demo_batch_queue_seconds_count", {"service": "demo"})
    assert waits == 20
    # Every wait in the lowest buckets: none came near the 200 ms delay.
    assert value("demo_batch_queue_seconds_bucket", {"service": "demo", "le": "0.025"}) == waits
    assert value("demo_batch_queue_seconds_sum", {"service": "demo"}) / waits < 0.01


def test_requests_arriving_while_the_model_computes_form_the_next_batch():
    fn = Recorder(delay=0.2)

    async def scenario():
        batcher = make(fn, max_batch_size=8, max_queue_delay_ms=0)
        first = asyncio.ensure_future(batcher.submit([1]))
        await asyncio.sleep(0.05)  # [1] computes alone; these three wait for it
        rest = [asyncio.ensure_future(batcher.submit([i])) for i in (2, 3, 4)]
        results = await asyncio.gather(first, *rest)
        await batcher.close()
        return results

    assert run(scenario()) == [[1], [4], [9], [16]]
    assert fn.batches == [[1], [2, 3, 4]]


def test_the_delay_bounds_only_a_batch_that_formed_while_the_model_was_busy():
    fn = Recorder(delay=0.2)

    async def scenario():
        batcher = make(fn, max_batch_size=4, max_queue_delay_ms=300)
        started = time.perf_counter()
        first = asyncio.ensure_future(batcher.submit([1]))  # idle: runs at once, until ~0.2 s
        await asyncio.sleep(0.15)
        second = asyncio.ensure_future(batcher.submit([2]))  # busy: its batch may wait until ~0.45 s
        await asyncio.sleep(0.15)
        third = asyncio.ensure_future(batcher.submit([3]))  # the model is free, the batch still forming
        await asyncio.gather(first, second, third)
        joined = time.perf_counter() - started
        await batcher.submit([1, 2, 3, 4])  # full at once: no waiting
        await batcher.close()
        return joined

    joined = run(scenario())
    assert fn.batches[:2] == [[1], [2, 3]]
    assert joined >= 0.45 + 0.2 - 0.05  # [2, 3] started once [2] had waited the delay
    assert fn.batches[2] == [1, 2, 3, 4]


class Upper:
    """A batch function on strings whose cost is their length; records each batch."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    def __call__(self, items: list[str]) -> list[str]:
        self.batches.append(list(items))
        return [item.upper() for item in items]


def test_a_cost_budget_bounds_batches_and_each_batch_comes_sorted_by_cost():
    fn = Upper()

    async def scenario():
        batcher = make(fn, max_batch_size=8, cost=len, max_batch_cost=10)
        requests = [["aaaa", "bb"], ["ccccc"], ["d", "eeeeee"]]
        results = await asyncio.gather(*(batcher.submit(r) for r in requests))
        await batcher.close()
        return requests, results

    requests, results = run(scenario())
    for request, result in zip(requests, results):
        assert result == [item.upper() for item in request]  # each caller's own order
    # 6 + 5 > 10: the second request starts the next batch; the third (7) cannot join it (12).
    assert fn.batches == [["bb", "aaaa"], ["ccccc"], ["d", "eeeeee"]]
    assert all(sum(map(len, batch)) <= 10 for batch in fn.batches)


def test_a_request_over_the_cost_budget_runs_alone_in_chunks_within_it():
    fn = Upper()

    async def scenario():
        batcher = make(fn, max_batch_size=8, cost=len, max_batch_cost=10)
        texts = ["x" * 6, "yy", "zzzz", "w" * 12, "v"]
        result = await batcher.submit(texts)
        await batcher.close()
        return texts, result

    texts, result = run(scenario())
    assert result == [t.upper() for t in texts]
    # Sorted by cost, then cut where the budget ends; a 12-long item alone exceeds it and runs alone.
    assert fn.batches == [["v", "yy", "zzzz"], ["x" * 6], ["w" * 12]]


def test_run_exclusive_runs_between_batches_on_the_batch_thread():
    fn = Recorder(delay=0.1)
    seen: list[tuple[str, int]] = []

    async def scenario():
        batcher = make(fn, max_batch_size=1, max_queue_delay_ms=0, name="squarer")
        computing = asyncio.ensure_future(batcher.submit([1]))
        await asyncio.sleep(0.02)
        exclusive = asyncio.ensure_future(
            batcher.run_exclusive(lambda: seen.append((threading.current_thread().name, len(fn.batches))))
        )
        await asyncio.gather(computing, exclusive)
        await batcher.close()

    run(scenario())
    [(thread, batches_before)] = seen
    assert thread.startswith("squarer") and batches_before == 1  # after the batch it waited for


def test_close_fails_waiting_callers_and_refuses_new_ones():
    fn = Recorder(delay=0.2)

    async def scenario():
        batcher = make(fn, max_batch_size=1, max_queue_delay_ms=0)
        running = asyncio.ensure_future(batcher.submit([1]))
        await asyncio.sleep(0.05)
        waiting = asyncio.ensure_future(batcher.submit([2]))
        await asyncio.sleep(0)
        await batcher.close()
        outcomes = await asyncio.gather(running, waiting, return_exceptions=True)
        with pytest.raises(Unavailable):
            await batcher.submit([3])
        return outcomes

    running, waiting = run(scenario())
    assert isinstance(running, Unavailable) and isinstance(waiting, Unavailable)


def test_metrics_record_batch_size_queue_and_compute_time():
    fn = Recorder(delay=0.01)
    metrics = ServiceMetrics("demo")

    async def scenario():
        batcher = make(fn, max_batch_size=8, observer=BatchMetrics(metrics, metric_prefix="demo_batch"))
        await asyncio.gather(*(batcher.submit([i]) for i in range(6)))
        await batcher.close()

    run(scenario())
    value = metrics.registry.get_sample_value
    assert value("demo_batch_size_count", {"service": "demo"}) == 1
    assert value("demo_batch_size_sum", {"service": "demo"}) == 6
    assert value("demo_batch_queue_seconds_count", {"service": "demo"}) == 6
    assert value("demo_batch_compute_seconds_sum", {"service": "demo"}) >= 0.01
    assert value("demo_batch_queued_items", {"service": "demo"}) == 0


def test_a_wrong_result_count_is_an_error_for_that_batch():
    async def scenario():
        batcher = make(lambda items: items[:-1])
        with pytest.raises(RuntimeError, match="returned 1 results for 2 items"):
            await batcher.submit([1, 2])
        await batcher.close()

    run(scenario())
