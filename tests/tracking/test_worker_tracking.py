"""Tracking with a real worker: one row per task with its chain links, retry
counts after UNAVAILABLE, SKIPPED stages after a failure, failures Celery
reports from the worker's main process (hard time limit, lost worker), revokes,
secrets kept out of rows, logs and Redis, and PostgreSQL going away under load."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from orchestrator.keys import task_live as task_key
from svc_parser.model import sample_pdf
from tests.tracking.probe import MAX_RETRIES, Probe
from tests.tracking.rows import rows_of, task_rows, wait_for, wait_statuses

pytestmark = pytest.mark.slow  # starts Celery workers

RESUME = ["Kim Minji. Backend engineer.", "Built Celery pipelines with retries and PostgreSQL tracking."]
RESUME_STAGES = [
    "tasks.resume_pipeline.parse_pdf",
    "tasks.resume_pipeline.generate_embeddings",
    "tasks.resume_pipeline.store_chunks",
]


@pytest.fixture(scope="module")
def probe(tmp_path_factory, log_dir, postgres_url):
    from tests.support.infra import database_beside

    workdir = tmp_path_factory.mktemp("probe")
    with database_beside(postgres_url) as database_url:
        running = Probe(workdir, log_dir, database_url)
        try:
            yield running.start()
        finally:
            running.stop()


def assert_chain_links(rows: list[dict], task_ids: list[str], pipeline_id: str) -> None:
    assert [r["task_id"] for r in rows] == task_ids  # one row per task, in stage order
    for index, row in enumerate(rows):
        assert row["root_task_id"] == task_ids[0]
        assert row["parent_task_id"] == (task_ids[index - 1] if index else None)
        assert (row["pipeline_id"], row["stage_index"], row["chain_total"]) == (pipeline_id, index, len(task_ids))


def test_resume_pipeline_retries_then_fails_and_skips(probe: Probe):
    submitted = probe.submit("resume", {"pdf": probe.app.aiworker.blobs.put(sample_pdf(RESUME)), "filename": "cv.pdf"})
    rows = wait_statuses(probe.database_url, submitted.task_ids, ["SUCCESS", "FAILURE", "SKIPPED"], timeout=90)
    assert_chain_links(rows, submitted.task_ids, submitted.pipeline_id)
    parsed, embedded, stored = rows
    assert [r["task_name"] for r in rows] == RESUME_STAGES
    assert parsed["retry_count"] == 0 and parsed["result"]["chunk_count"] >= 1 and parsed["worker"] == "probe@test"
    assert parsed["queue"] == "cpu_queue" and parsed["started_at"] <= parsed["completed_at"] and parsed["runtime"] > 0
    assert parsed["args"][0]["filename"] == "cv.pdf"
    assert embedded["retry_count"] == MAX_RETRIES and embedded["error_type"] == "RetryableServiceError"
    assert "UNAVAILABLE" in embedded["error_message"] and "UNAVAILABLE" in embedded["retry_reason"]
    assert embedded["traceback"].startswith("Traceback") and embedded["queue"] == "gpu_queue"
    assert stored["started_at"] is None and "not run" in stored["error_message"]
    # Celery's own result backend calls the never-run link FAILURE; the status view says SKIPPED.
    assert probe.app.AsyncResult(submitted.task_ids[2]).state == "FAILURE"
    status = probe.queries.pipeline_status(submitted.pipeline_id)
    assert status.overall_state == "FAILURE" and status.total_steps == 3 and status.completed_steps == 1
    assert [t.status for t in status.tasks] == ["SUCCESS", "FAILURE", "SKIPPED"]
    assert [t.step for t in status.tasks] == [1, 2, 3] and all(t.ready for t in status.tasks)
    assert status.tasks[1].retries == MAX_RETRIES and status.source == "postgres"
    pipeline = probe.queries.recent_pipelines(50)
    assert any(p.pipeline_id == submitted.pipeline_id and p.overall_state == "FAILURE" for p in pipeline)


def test_corrupt_pdf_fails_at_once_and_later_stages_are_skipped(probe: Probe):
    submitted = probe.submit("resume", {"pdf": probe.app.aiworker.blobs.put(b"%PDF-1.4 garbage\n%%EOF")})
    rows = wait_statuses(probe.database_url, submitted.task_ids, ["FAILURE", "SKIPPED", "SKIPPED"], timeout=60)
    assert_chain_links(rows, submitted.task_ids, submitted.pipeline_id)
    assert rows[0]["retry_count"] == 0 and rows[0]["error_type"] in ("ServiceCallError", "InvalidInput")
    status = probe.queries.pipeline_status(submitted.pipeline_id)
    assert status.overall_state == "FAILURE"
    assert [t.status for t in status.tasks] == ["FAILURE", "SKIPPED", "SKIPPED"]


def test_retry_count_after_the_parser_was_unavailable_for_a_while(probe: Probe):
    probe.parser_proxy.close()  # the parser "goes away"
    try:
        submitted = probe.submit("resume", {"pdf": probe.app.aiworker.blobs.put(sample_pdf(RESUME))})
        first = submitted.task_ids[0]
        wait_for(lambda: probe.app.aiworker.redis.hget(task_key(first), "status") == b"RETRY", 30, "parse_pdf retrying")
    finally:
        probe.parser_proxy.open()
    rows = wait_statuses(probe.database_url, submitted.task_ids, ["SUCCESS", "FAILURE", "SKIPPED"], timeout=90)
    assert 1 <= rows[0]["retry_count"] < MAX_RETRIES and "UNAVAILABLE" in rows[0]["retry_reason"]
    assert rows[0]["error_message"] is None and rows[0]["result"]["page_count"] == len(RESUME)


def test_failures_reported_by_the_workers_main_process(probe: Probe):
    timed_out = probe.send("probe.sleep", seconds=10)  # soft limit 1 s (ignored), hard limit 2 s
    lost = probe.send("probe.die")  # SIGKILLs its pool process, not requeued
    requeued = probe.send("probe.die_once")  # SIGKILLs its pool process once, requeued (reject_on_worker_lost)
    rows = wait_statuses(probe.database_url, [timed_out, lost, requeued], ["FAILURE", "FAILURE", "SUCCESS"], 60)
    assert rows[0]["error_type"] == "TimeLimitExceeded" and rows[0]["worker"] == "probe@test"
    assert rows[0]["started_at"] is not None and rows[0]["completed_at"] > rows[0]["started_at"]
    assert rows[1]["error_type"] == "WorkerLostError" and "exited prematurely" in rows[1]["error_message"]
    assert rows[2]["redelivered"] is True and rows[2]["result"] == "survived"


def test_revoking_a_running_task(probe: Probe):
    task_id = probe.send("probe.nap", seconds=30)
    wait_for(lambda: probe.app.aiworker.redis.hget(task_key(task_id), "status") == b"STARTED", 30, "nap started")
    probe.app.control.revoke(task_id, terminate=True, signal="SIGKILL")
    [row] = wait_statuses(probe.database_url, [task_id], ["REVOKED"], timeout=30)
    assert "terminated" in row["error_message"] and row["worker"] == "probe@test"


def test_secrets_never_reach_rows_or_logs(probe: Probe):
    secret = f"s3cret-{uuid.uuid4().hex}"
    submitted = probe.submit("ai_pipeline", {"text": "hello there", "options": {"api_key": secret, "password": secret}})
    echo = probe.send("probe.echo", "plain", password=secret, api_key=secret, nested={"Authorization": secret})
    fail = probe.send("probe.fail", secret=secret)  # its exception message carries the secret
    rows = wait_statuses(
        probe.database_url,
        [*submitted.task_ids, echo, fail],
        ["SUCCESS", "FAILURE", "SKIPPED", "SKIPPED", "SUCCESS", "FAILURE"],
        timeout=90,
    )
    assert rows[4]["kwargs"]["password"] == "***" and rows[4]["result"]["kwargs"]["nested"] == {"Authorization": "***"}
    assert rows[0]["result"]["data"]["options"] == {"task": "summarize", "api_key": "***", "password": "***"}
    assert "password=***" in rows[5]["error_message"] and rows[5]["error_type"] == "ValueError"
    everything = task_rows(probe.database_url, "true")
    assert secret not in repr(everything)
    time.sleep(1)  # let the worker flush its log lines
    leaking = [
        p.name for p in Path(probe.log_dir).rglob("*") if p.is_file() and secret in p.read_text(errors="replace")
    ]
    assert leaking == []
    # Nor Redis (the probe's own): the result backend's extended meta, the progress and live
    # hashes, the remembered submission, the outbox. Broker messages carry the raw input while
    # they wait; once every message is acknowledged, no key holds the secret.
    client = probe.app.aiworker.redis
    deadline = time.monotonic() + 15
    while (holding := redis_keys_holding(client, secret)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert holding == []
    # ...while result_extended's fields are all there, the secrets masked and the rest whole.
    echoed = probe.app.AsyncResult(echo)
    assert (echoed.name, echoed.worker, echoed.queue, echoed.retries) == ("probe.echo", "probe@test", "cpu_queue", 0)
    assert echoed.args == ["plain"]
    assert echoed.kwargs == {"password": "***", "api_key": "***", "nested": {"Authorization": "***"}}
    assert echoed.result == {"args": ["plain"], "kwargs": echoed.kwargs}
    stage1 = probe.app.AsyncResult(submitted.task_ids[0])
    assert stage1.args == [{"text": "hello there", "options": {"api_key": "***", "password": "***"}}]
    assert stage1.result["data"]["text"] == "hello there"
    failed = probe.app.AsyncResult(fail)
    assert isinstance(failed.result, ValueError) and "password=***" in str(failed.result)
    assert failed.kwargs == {"secret": "***"} and "ValueError" in failed.traceback


def redis_keys_holding(client, needle: str) -> list[str]:
    """Every key of the database whose name or value (of any type) contains `needle`."""
    needle_bytes, found = needle.encode(), []
    for key in client.scan_iter(count=1000):
        kind = client.type(key).decode()
        if kind == "string":
            values = [client.get(key)]
        elif kind == "hash":
            values = [part for pair in client.hgetall(key).items() for part in pair]
        elif kind == "list":
            values = client.lrange(key, 0, -1)
        elif kind == "set":
            values = list(client.smembers(key))
        elif kind == "zset":
            values = client.zrange(key, 0, -1)
        elif kind == "stream":
            values = [part for _, fields in client.xrange(key) for pair in fields.items() for part in pair]
        else:  # gone meanwhile ("none")
            values = []
        if needle_bytes in key or any(needle_bytes in (v or b"") for v in values):
            found.append(f"{kind} {key.decode()}")
    return found


def test_postgres_away_while_tasks_run_then_every_record_lands(probe: Probe):
    if probe.db_proxy is None:
        pytest.skip("PostgreSQL on a Unix socket (pgserver): no TCP connection to cut")
    log_path = probe.log_dir / "worker-probe.log"
    log_start = log_path.stat().st_size  # the log is appended to across runs: read only what follows
    probe.db_proxy.close()
    try:
        ids = [probe.send("probe.echo", i) for i in range(60)]
        pipelines = [
            probe.submit("resume", {"pdf": probe.app.aiworker.blobs.put(b"%PDF-1.4 junk\n%%EOF")}) for _ in range(3)
        ]
        for task_id in ids:  # tasks run to the end while tracking cannot write: never blocked
            assert probe.app.AsyncResult(task_id).get(timeout=60)["args"] is not None
        for p in pipelines:
            wait_for(lambda p=p: probe.app.AsyncResult(p.task_ids[0]).state == "FAILURE", 30, "corrupt PDF failed")
        time.sleep(1)
        chain_ids = [t for p in pipelines for t in p.task_ids]
        assert rows_of(probe.database_url, ids + chain_ids) == []  # nothing written meanwhile...
        outbox = probe.app.aiworker.settings.tracking_outbox
        assert probe.app.aiworker.redis.xlen(outbox) >= len(ids) * 2  # ...all of it kept in the outbox
    finally:
        probe.db_proxy.open()
    rows = wait_statuses(probe.database_url, ids, ["SUCCESS"] * len(ids), timeout=60)
    assert [r["result"]["args"] for r in rows] == [[i] for i in range(len(ids))]
    assert all(r["created_at"] <= r["started_at"] <= r["completed_at"] and r["worker"] == "probe@test" for r in rows)
    wait_statuses(probe.database_url, chain_ids, ["FAILURE", "SKIPPED", "SKIPPED"] * len(pipelines), timeout=30)
    assert len(task_rows(probe.database_url, "task_id = ANY(:ids)", ids=ids + chain_ids)) == len(ids + chain_ids)
    client, outbox = probe.app.aiworker.redis, probe.app.aiworker.settings.tracking_outbox
    wait_for(lambda: client.xlen(outbox) == 0, 20, "outbox drained")
    assert client.xlen(f"{outbox}:dead") == 0
    with log_path.open() as handle:
        handle.seek(log_start)
        log = handle.read()
    assert "tracking_write_failed" in log and "tracking_write_recovered" in log
