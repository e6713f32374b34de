"""PostgreSQL away for a while under load: the store stages retry until it is
back, tracking records wait in the Redis outbox meanwhile, and afterwards
every pipeline has completed and every task record has landed."""

from __future__ import annotations

import time

import pytest

from tests.fault.harness import FaultStack
from tests.tracking.rows import task_rows, wait_for

OUTAGE_SECONDS = 6


def test_postgres_away_under_load_then_everything_lands(fault: FaultStack):
    if fault.db_proxy is None:
        pytest.skip("PostgreSQL on a Unix socket (pgserver): no TCP connection to cut")
    pipelines = fault.submit_resumes(10, seed=300)
    wait_for(lambda: "SUCCESS" in fault.final_states(pipelines), 60, "the first pipeline done", interval=0.1)
    fault.db_proxy.close()
    try:
        time.sleep(OUTAGE_SECONDS)
        outbox = fault.app.aiworker.settings.tracking_outbox
        assert fault.redis.xlen(outbox) > 0, "no tracking record waited for PostgreSQL"
    finally:
        fault.db_proxy.open()
    fault.wait_all_succeeded(pipelines, timeout=120)
    fault.assert_tracked_once_and_succeeded(pipelines)
    rows = task_rows(fault.database_url, "task_id = ANY(:ids)", ids=[t for p in pipelines for t in p.task_ids])
    stores = [r for r in rows if r["task_name"].endswith("store_chunks")]
    assert any(r["retry_count"] > 0 for r in stores), "no store stage met PostgreSQL away"
    assert all("OperationalError" in r["retry_reason"] for r in stores if r["retry_count"] > 0)
