"""SIGKILL in the middle of a batch of pipelines: first a pool child (its task
goes back to the queue at once: task_reject_on_worker_lost), then a whole
worker (its unacked tasks come back after the visibility timeout, to the
worker started in its place). Every pipeline completes; tracking has one
SUCCESS row per stage, nothing lost, nothing doubled."""

from __future__ import annotations

import os
import signal

from tests.fault.harness import VISIBILITY_TIMEOUT, FaultStack
from tests.tracking.rows import task_rows, wait_for


def test_killed_pool_child_then_killed_worker_lose_no_pipeline(fault: FaultStack):
    pipelines = fault.submit_resumes(12, seed=100)

    # 1. A gpu pool child dies while it embeds: its task is requeued and run again.
    active = wait_for(lambda: fault.active_tasks("gpu"), 60, "a gpu task running", interval=0.05)
    victim = active[0]
    gpu_log = fault.workers["gpu"].log_path
    seen = gpu_log.stat().st_size  # the file is appended to across runs: read what follows
    os.kill(victim["worker_pid"], signal.SIGKILL)

    def noticed() -> bool:
        with gpu_log.open(errors="replace") as handle:
            handle.seek(seen)
            return "WorkerLostError" in handle.read()

    wait_for(noticed, 30, "the worker noticed its lost child")

    # 2. The whole cpu worker dies with tasks delivered to it and not acknowledged: killed the
    # moment it holds one (a stage of cpu_queue takes a fraction of a second, then it acks).
    wait_for(lambda: fault.unacked_of(pipelines, "cpu_queue"), 60, "a cpu stage held unacked", interval=0.01)
    fault.kill_worker("cpu")
    held = fault.unacked_of(pipelines, "cpu_queue")
    assert held, "the killed worker held no unacknowledged stage: nothing was in flight"
    finished_before_restart = fault.final_states(pipelines).count("SUCCESS")
    assert finished_before_restart < len(pipelines), "the batch was over before the kill"

    fault.start_worker("cpu")  # the replacement picks up what the dead one held
    fault.wait_all_succeeded(pipelines, timeout=VISIBILITY_TIMEOUT + 90)
    fault.wait_none_unacked(pipelines)
    fault.assert_tracked_once_and_succeeded(pipelines)

    # The killed child's task and the dead worker's tasks ran again; their rows say so.
    rows = {
        r["task_id"]: r
        for r in task_rows(fault.database_url, "task_id = ANY(:ids)", ids=[t for p in pipelines for t in p.task_ids])
    }
    assert rows[victim["id"]]["redelivered"] is True
    assert all(rows[task_id]["redelivered"] for task_id in held), {t: rows[t] for t in held}
