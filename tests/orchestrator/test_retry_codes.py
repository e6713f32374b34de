"""The retry codes other than UNAVAILABLE, with a real worker: a stage whose
service runs past the deadline (DEADLINE_EXCEEDED) and then answers
RESOURCE_EXHAUSTED is retried, completes once the service behaves, and every
call carries the stage's remaining time as its gRPC deadline.

The embedder here is a small gRPC server of the test's own; the worker (both
queues, tracking on) has a private Redis, so no other worker takes its tasks."""

from __future__ import annotations

import json
import threading
import time
from concurrent import futures
from dataclasses import dataclass, field

import grpc
import numpy as np
import pytest
from celery import current_app

from aiworker.embedder.v1 import embedder_pb2, embedder_pb2_grpc
from aiworker_local.stack import make_app
from aiworker_local.workers import orchestrator_env, start_worker
from orchestrator.pipelines.stage import DEADLINE_MARGIN_SECONDS
from orchestrator.pipelines.submission import submit
from orchestrator.storage.db import upgrade
from tests.support.infra import start_redis
from tests.tracking.rows import wait_statuses

SOFT_LIMIT = 6  # seconds: the embed call's deadline is about 6 - 2 (margin) = 4 s
CLOSED = "127.0.0.1:1"
DIMENSION = 384


@dataclass
class Call:
    time_remaining: float | None
    task_id: str
    code: str


@dataclass
class FlakyEmbedder(embedder_pb2_grpc.EmbedderServicer):
    """1st call: works past its deadline (the client gets DEADLINE_EXCEEDED);
    2nd: RESOURCE_EXHAUSTED; after that: vectors."""

    calls: list[Call] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def Embed(self, request, context):
        remaining = context.time_remaining()
        task_id = dict(context.invocation_metadata()).get("x-task-id", "")
        with self.lock:
            attempt = len(self.calls)
            code = ("DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "OK")[min(attempt, 2)]
            self.calls.append(Call(remaining, task_id, code))
        if code == "DEADLINE_EXCEEDED":
            until = time.monotonic() + (remaining or 10) + 3
            while context.is_active() and time.monotonic() < until:  # the deadline ends the RPC
                time.sleep(0.05)
            return embedder_pb2.EmbedResponse()
        if code == "RESOURCE_EXHAUSTED":
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "batching queue full, try later")
        vectors = [
            embedder_pb2.Vector(values=np.full(DIMENSION, 1 / np.sqrt(DIMENSION)).tolist()) for _ in request.texts
        ]
        return embedder_pb2.EmbedResponse(vectors=vectors, dimension=DIMENSION, model="flaky-test-embedder")


@pytest.fixture
def flaky_backend(tmp_path, log_dir, postgres_url):
    """A worker on both queues with a private Redis, PostgreSQL, and the flaky embedder."""
    previous_app = current_app._get_current_object()
    embedder = FlakyEmbedder()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    embedder_pb2_grpc.add_EmbedderServicer_to_server(embedder, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    redis_proc, redis_url = start_redis(tmp_path / "redis")
    worker = None
    try:
        upgrade(postgres_url)
        env = orchestrator_env(
            redis_url,
            postgres_url,
            tmp_path / "blobs",
            {"embedder": f"127.0.0.1:{port}", "parser": CLOSED, "llm": CLOSED, "stt": CLOSED},
            task_soft_time_limit=SOFT_LIMIT,
            task_time_limit=SOFT_LIMIT + 4,
            max_retries=3,
            retry_backoff_seconds=0.2,
            retry_backoff_max_seconds=0.5,
            tracking_spool_dir=tmp_path / "spool",
        )
        app = make_app(env)
        worker = start_worker(app, "cpu_queue,gpu_queue", env, log_dir, f"retry-codes-{port}", concurrency=1)
        yield app, embedder, worker
    finally:
        if worker is not None:
            worker.stop()
        redis_proc.stop()
        server.stop(grace=None)
        previous_app.set_current()


def wait_done(app, task_ids: list[str], timeout: float) -> list:
    results = [app.AsyncResult(t) for t in task_ids]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = [r.state for r in results]
        if all(s == "SUCCESS" for s in states) or "FAILURE" in states:
            return results
        time.sleep(0.2)
    raise TimeoutError(f"pipeline not done after {timeout}s: {[r.state for r in results]}")


def test_deadline_exceeded_and_resource_exhausted_are_retried_with_the_remaining_time_as_deadline(flaky_backend):
    app, embedder, worker = flaky_backend
    started = time.monotonic()
    document = app.aiworker.blobs.put(b"Retry codes. The embedder is slow, then busy, then fine.")
    submitted = submit(app, "document", {"document": document, "filename": "retry.txt", "content_type": "text/plain"})
    results = wait_done(app, submitted.task_ids, timeout=30)
    assert [r.state for r in results] == ["SUCCESS"] * 4, [r.result for r in results]
    embed_id = submitted.task_ids[2]

    # Three calls of the one embed task: slow past its deadline, busy, fine.
    assert [c.code for c in embedder.calls] == ["DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "OK"]
    assert {c.task_id for c in embedder.calls} == {embed_id}
    # Each call's deadline is what the run had left: the soft limit minus the margin,
    # less the moments before the call (every retry is a new run, with the whole limit);
    # gRPC rounds the timeout it puts on the wire up a little.
    expected = SOFT_LIMIT - DEADLINE_MARGIN_SECONDS
    for call in embedder.calls:
        assert expected - 1.0 < call.time_remaining <= expected + 0.05, [c.time_remaining for c in embedder.calls]

    # Celery's retries and tracking's count and reason agree.
    assert results[2].retries == 2 and results[2].result["model"] == "flaky-test-embedder"
    [row] = wait_statuses(app.aiworker.settings.tracking_database_url, [embed_id], ["SUCCESS"], timeout=15)
    assert row["retry_count"] == 2 and "RESOURCE_EXHAUSTED" in row["retry_reason"]
    retries_logged = [
        json.loads(line)
        for line in worker.log_path.read_text().splitlines()
        if embed_id in line and "stage_retry_scheduled" in line
    ]
    assert [e["error"].split(":")[1].strip() for e in retries_logged] == ["DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED"]
    assert time.monotonic() - started < 30
