"""The broker loses its memory: Redis killed and started again WITHOUT its data
(no append-only file: every queued message, unacknowledged delivery, result,
live hash and undrained tracking event gone) while pipelines are in flight.
PostgreSQL keeps what a re-send needs (each pipeline's input, each finished
stage's output), so beat's lost-stage sweep re-sends every stage that is now
nowhere and every pipeline completes."""

from __future__ import annotations

import os
import shutil
import signal

from orchestrator import keys
from tests.fault.harness import FaultStack
from tests.tracking.rows import task_rows, wait_for


def test_pipelines_in_flight_complete_after_the_broker_lost_everything(fault: FaultStack):
    pipelines = fault.submit_resumes(6, seed=700)
    first_ids = [p.task_ids[0] for p in pipelines]
    # Some stages done (and tracked), others queued or running, when the broker goes.
    wait_for(
        lambda: (
            len(
                [
                    r
                    for r in task_rows(fault.database_url, "task_id = ANY(:ids)", ids=first_ids)
                    if r["status"] == "SUCCESS"
                ]
            )
            >= 2
        ),
        120,
        "a few first stages done",
    )
    os.kill(fault.redis_proc.pid, signal.SIGKILL)
    fault.redis_proc.proc.wait(timeout=10)
    data = fault.workdir / "redis"
    for item in data.iterdir():  # its append-only files: the restart starts from nothing
        shutil.rmtree(item) if item.is_dir() else item.unlink()
    assert not any(data.iterdir())
    fault.restart_redis()
    fault.redis_proc.wait_until(lambda: fault.redis.ping(), 20, "Redis answering again")
    assert not any(fault.redis.exists(keys.submission(p.pipeline_id)) for p in pipelines)  # it knows nothing
    queries = fault.queries
    try:
        wait_for(
            lambda: all(queries.pipeline_status(p.pipeline_id).overall_state == "SUCCESS" for p in pipelines),
            180,
            "every pipeline completed",
            interval=1,
        )
    except TimeoutError as exc:
        stuck = [
            [(t.task_name.rsplit(".", 1)[-1], t.status) for t in queries.pipeline_status(p.pipeline_id).tasks]
            for p in pipelines
        ]
        raise TimeoutError(f"{exc}: {stuck}") from None
    fault.assert_tracked_once_and_succeeded(pipelines)
