"""A model service restarted in the middle of a batch: the stages that met it
down got UNAVAILABLE, retried with backoff, and every pipeline completed."""

from __future__ import annotations

from tests.fault.harness import FaultStack
from tests.tracking.rows import task_rows, wait_for


def test_parser_and_embedder_restarted_mid_batch(fault: FaultStack):
    pipelines = fault.submit_resumes(10, seed=200)
    wait_for(lambda: "SUCCESS" in fault.final_states(pipelines), 60, "the first pipeline done", interval=0.1)
    for kind in ("parser", "embedder"):  # SIGTERM: drain, stop, start again on the same port
        fault.services[kind].restart()
    fault.wait_all_succeeded(pipelines, timeout=120)
    fault.assert_tracked_once_and_succeeded(pipelines)
    rows = task_rows(fault.database_url, "task_id = ANY(:ids)", ids=[t for p in pipelines for t in p.task_ids])
    retried = {r["task_name"] for r in rows if r["retry_count"] > 0}
    assert retried, "no stage met a service down: the restart was not in the middle of the batch"
    assert all("UNAVAILABLE" in (r["retry_reason"] or "") for r in rows if r["retry_count"] > 0)
