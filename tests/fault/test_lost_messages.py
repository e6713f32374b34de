"""Messages the broker lost (a worker killed between Redis's BRPOP and
recording the message as unacked takes it to its grave): beat's
redeliver_lost finds the stages that are nowhere and sends them again, under
the same task ids, with the input they had. Here the loss is made exact: the
message is taken out of its Redis list while that queue's worker is stopped.
(Stopped, not paused with cancel_consumer: a worker paused and resumed that
way stops consuming after a later Redis restart, a Celery 5.6 bug.)"""

from __future__ import annotations

import json
import time

from orchestrator.broker.queue_state import queue_keys
from tests.fault.harness import LOST_AFTER_SECONDS, FaultStack
from tests.tracking.rows import task_rows, wait_for


def take_message(fault: FaultStack, queue: str, task_id: str) -> bool:
    """Removes the message of `task_id` from `queue`'s lists, as a dying worker's pop would."""
    client = fault.redis
    for key in queue_keys(fault.app.conf.broker_transport_options)[queue]:
        for raw in client.lrange(key, 0, -1):
            if json.loads(raw)["headers"]["id"] == task_id:
                return bool(client.lrem(key, 1, raw))
    return False


def consume(fault: FaultStack, kind: str, on: bool) -> None:
    """Starts a worker for `kind`'s queue, or stops the one there is (warm shutdown)."""
    if on and not fault.workers[kind].alive():
        fault.start_worker(kind)
    elif not on:
        fault.workers[kind].stop()


def test_a_lost_first_stage_and_a_lost_middle_stage_are_sent_again(fault: FaultStack):
    consume(fault, "cpu", False)
    consume(fault, "gpu", False)
    try:
        first, middle = fault.submit_resumes(2, seed=500)
        assert wait_for(lambda: take_message(fault, "cpu_queue", first.task_ids[0]), 10, "first stage queued")
        consume(fault, "cpu", True)  # `middle` parses; its embedding waits in gpu_queue
        assert wait_for(lambda: take_message(fault, "gpu_queue", middle.task_ids[1]), 30, "embedding queued")
    finally:
        consume(fault, "cpu", True)
        consume(fault, "gpu", True)
    fault.wait_all_succeeded([first, middle], timeout=60)
    fault.assert_tracked_once_and_succeeded([first, middle])  # the same ids: one row per stage
    worker_logs = "".join(p.log_path.read_text(errors="replace") for p in fault.workers.values())
    redelivered = [json.loads(line) for line in worker_logs.splitlines() if '"lost_task_redelivered"' in line]
    assert {(r["task_id"], r["stage_index"]) for r in redelivered} >= {(first.task_ids[0], 0), (middle.task_ids[1], 1)}
    # Their rows say they were delivered again; a stage sent after them for the first time does not.
    ids = first.task_ids + middle.task_ids
    rows = {r["task_id"]: r for r in task_rows(fault.database_url, "task_id = ANY(:ids)", ids=ids)}
    assert rows[first.task_ids[0]]["redelivered"] and rows[middle.task_ids[1]]["redelivered"]
    assert not rows[first.task_ids[1]]["redelivered"] and not rows[middle.task_ids[0]]["redelivered"]


def test_nothing_is_sent_again_while_every_stage_is_somewhere(fault: FaultStack):
    """Embeddings waiting in a queue nobody consumes: slow, not lost; the sweeps
    run and leave them alone."""
    consume(fault, "gpu", False)
    log = fault.workers["cpu"].log_path
    try:
        pipelines = fault.submit_resumes(4, seed=520)
        wait_for(
            lambda: all(fault.app.AsyncResult(p.task_ids[0]).state == "SUCCESS" for p in pipelines),
            30,
            "every parse done, every embedding queued",
        )
        sweeps = log.read_text(errors="replace").count("tasks.maintenance.redeliver_lost[")
        time.sleep(LOST_AFTER_SECONDS + 2 * 2 + 1)  # past lost_task_after_seconds, and two more sweeps
        text = log.read_text(errors="replace")
        assert text.count("tasks.maintenance.redeliver_lost[") > sweeps, "no sweep ran meanwhile"
        assert not [
            line
            for line in text.splitlines()
            if '"lost_task_redelivered"' in line and any(p.pipeline_id in line for p in pipelines)
        ]
    finally:
        consume(fault, "gpu", True)
    fault.wait_all_succeeded(pipelines, timeout=60)
    fault.assert_tracked_once_and_succeeded(pipelines)
