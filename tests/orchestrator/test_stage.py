"""StageTask's pure logic: the gRPC deadline of a run is the time left of that
run, also when runs of one task overlap on threads (`--pool threads`)."""

from __future__ import annotations

import threading
import time

import pytest

from orchestrator.app import create_app
from orchestrator.pipelines.stage import DEADLINE_MARGIN_SECONDS, StageTask
from orchestrator.settings import OrchestratorSettings

SOFT_LIMIT = 30


@pytest.fixture(scope="module")
def overlapping_task():
    """A stage whose run reads its deadline, waits for a second run to start on
    another thread, then reads its deadline again."""
    app = create_app(
        OrchestratorSettings(task_soft_time_limit=SOFT_LIMIT, task_time_limit=SOFT_LIMIT + 10, tracking_enabled=False)
    )
    gates: dict[str, threading.Event] = {}

    @app.task(bind=True, base=StageTask, name="test.stage.overlap", shared=False)
    def overlap(self: StageTask, name: str) -> dict[str, float]:
        before = self.rpc().timeout
        if name in gates:
            gates[name].wait(10)
        return {"before": before, "after": self.rpc().timeout}

    return overlap, gates


def test_each_run_keeps_its_own_start_time_across_threads(overlapping_task):
    task, gates = overlapping_task
    gates["first"] = threading.Event()
    results: dict[str, dict[str, float]] = {}

    def run(name: str) -> None:
        results[name] = task.apply(args=(name,)).get()

    first = threading.Thread(target=run, args=("first",))
    first.start()
    time.sleep(1.0)  # the first run is 1 s old when the second one starts on another thread
    run("second")
    gates["first"].set()
    first.join(10)

    full = SOFT_LIMIT - DEADLINE_MARGIN_SECONDS
    assert results["second"]["before"] == pytest.approx(full, abs=0.3)
    assert results["first"]["before"] == pytest.approx(full, abs=0.3)
    # The first run has used at least 1 s of its limit: the second run's start must not reset it.
    assert results["first"]["after"] <= full - 0.9, results


def test_a_retry_or_a_new_run_starts_with_the_whole_limit(overlapping_task):
    task, _ = overlapping_task
    for _ in range(2):
        result = task.apply(args=("alone",)).get()
        assert result["before"] == pytest.approx(SOFT_LIMIT - DEADLINE_MARGIN_SECONDS, abs=0.3)


def test_the_deadline_never_drops_below_half_a_second():
    app = create_app(OrchestratorSettings(task_soft_time_limit=1, task_time_limit=5, tracking_enabled=False))

    @app.task(bind=True, base=StageTask, name="test.stage.short", shared=False)
    def short(self: StageTask) -> float:
        return self.remaining_seconds()

    assert short.apply().get() == 0.5  # 1 s limit minus the 2 s margin: floored
