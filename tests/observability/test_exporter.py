"""`aiworker-exporter` as a process against a real Redis (a spare database) and
a PostgreSQL database of this module's own: queue gauges from messages a real
producer published (and one a real kombu channel holds unacknowledged), the
outbox and its dead letters, and counters / histograms from rows written
through the tracking writer, each row counted once across scrapes and across
a restart; nothing counted while older events still wait in the outbox."""

from __future__ import annotations

import json
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from aiworker_local.infra import free_port
from aiworker_local.procs import ManagedProcess
from aiworker_local.stack import make_app
from orchestrator import keys
from orchestrator.storage.db import upgrade
from orchestrator.tracking.states import FAILURE, RETRY, STARTED, SUCCESS
from tests.observability.records import Run, later, task, write
from tests.support.infra import database_beside, spare_redis_database
from tests.tracking.rows import wait_for

BIN = Path(sys.executable).parent
SETTLE = 1.0
LAST_POLL, LAG = "aiworker_exporter_last_poll_timestamp_seconds", "aiworker_exporter_lag_seconds"
Metrics = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture(scope="module")
def database(postgres_url: str) -> Iterator[str]:
    with database_beside(postgres_url) as url:
        upgrade(url)
        yield url


@pytest.fixture
def broker(redis_url: str) -> Iterator[str]:
    with spare_redis_database(redis_url, 1) as url:
        yield url


@pytest.fixture
def env(broker: str, database: str) -> dict[str, str]:
    return {
        "AIWORKER_BROKER_URL": broker,
        "AIWORKER_DATABASE_URL": database,
        "AIWORKER_TRACKING_OUTBOX": f"test:exporter:{uuid.uuid4().hex[:8]}",
        "AIWORKER_EXPORTER_PORT": str(free_port()),
        "AIWORKER_EXPORTER_POLL_SECONDS": "0.2",
        "AIWORKER_EXPORTER_SETTLE_SECONDS": str(SETTLE),
        "AIWORKER_EXPORTER_STUCK_FACTOR": "4",
        "AIWORKER_EXPORTER_ESTIMATE_REFRESH_SECONDS": "0.2",
        "AIWORKER_EXPORTER_LOG_FORMAT": "json",
    }


def start_exporter(env: dict[str, str], log_dir: Path, name: str) -> ManagedProcess:
    process = ManagedProcess(
        name, [str(BIN / "aiworker-exporter")], log_dir / f"{name}-{time.time_ns()}.log", env=env
    ).start()
    process.wait_until(lambda: scrape(env)[(LAST_POLL, ())] > 0, 60, "a first poll")
    return process


def scrape(env: dict[str, str]) -> Metrics:
    url = f"http://127.0.0.1:{env['AIWORKER_EXPORTER_PORT']}/metrics"
    with urllib.request.urlopen(url, timeout=10) as reply:
        body = reply.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def scrape_counting_to(env: dict[str, str], at: float) -> Metrics:
    """A scrape after a poll that counted every row up to `at`."""
    return wait_for(
        lambda: (m := scrape(env))[(LAST_POLL, ())] - m[(LAG, ())] >= at and m, 30, f"rows up to {at} counted"
    )


def v(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics[(name, tuple(sorted(labels.items())))]


# ---------------------------------------------------------------------- Redis, read at each scrape
def test_queue_and_outbox_gauges_read_what_redis_holds(env, log_dir):
    app = make_app({**env, "AIWORKER_TRACKING_ENABLED": "false"})
    client = redis.Redis.from_url(env["AIWORKER_BROKER_URL"])
    outbox = env["AIWORKER_TRACKING_OUTBOX"]

    def publish(queue: str, priority: int) -> tuple[float, float]:
        before = time.time()
        app.send_task("tasks.resume_pipeline.parse_pdf", args=[{}], queue=queue, priority=priority)
        return before, time.time()

    oldest_cpu = publish("cpu_queue", 9)  # kombu's list `cpu_queue:9`: the oldest is not in the first list
    time.sleep(1.0)
    for queue, priority in (("cpu_queue", 0), ("cpu_queue", 0), ("cpu_queue", 5), ("gpu_queue", 0)):
        publish(queue, priority)
    connection = app.connection_for_read()
    channel = connection.channel()
    held = channel.basic_get("gpu_queue", no_ack=False)  # as a worker takes it: into the `unacked` hash
    assert held is not None
    newest_gpu = publish("gpu_queue", 0)
    assert [client.llen(k) for k in ("cpu_queue", "cpu_queue:5", "cpu_queue:9", "gpu_queue")] == [2, 1, 1, 1]
    assert client.hlen(keys.UNACKED) == 1
    entry_before = time.time()
    entries = [client.xadd(outbox, {"e": json.dumps([])}) for _ in range(3)]
    for _ in range(2):
        client.xadd(keys.dead_letters(outbox), {"e": "[]", "reason": "refused"})
    exporter = start_exporter(env, log_dir, "exporter-gauges")
    try:
        start = time.time()
        metrics = scrape(env)
        end = time.time()
        assert v(metrics, "aiworker_queue_length", queue="cpu_queue") == 4
        assert v(metrics, "aiworker_queue_length", queue="gpu_queue") == 1
        assert v(metrics, "aiworker_queue_unacked", queue="cpu_queue") == 0
        assert v(metrics, "aiworker_queue_unacked", queue="gpu_queue") == 1
        cpu_age = v(metrics, "aiworker_queue_oldest_age_seconds", queue="cpu_queue")
        assert start - oldest_cpu[1] - 0.01 <= cpu_age <= end - oldest_cpu[0] + 0.01 and cpu_age >= 1.0
        gpu_age = v(metrics, "aiworker_queue_oldest_age_seconds", queue="gpu_queue")
        assert start - newest_gpu[1] - 0.01 <= gpu_age <= end - newest_gpu[0] + 0.01
        assert v(metrics, "aiworker_tracking_outbox_entries") == 3
        assert v(metrics, "aiworker_tracking_dead_letters") == 2
        outbox_age = v(metrics, "aiworker_tracking_outbox_oldest_age_seconds")
        assert start - entry_before - 0.01 <= outbox_age <= end - entry_before + 0.01  # Redis's clock: this one
        assert [v(metrics, "aiworker_exporter_up", source=s) for s in ("broker", "redis", "postgres")] == [1, 1, 1]

        # A worker takes the next cpu message (priority 0 first) and acknowledges the gpu one; drainers
        # empty the outbox.
        assert channel.basic_get("cpu_queue", no_ack=False) is not None
        held.ack()
        client.xdel(outbox, *entries)
        metrics = scrape(env)
        assert v(metrics, "aiworker_queue_length", queue="cpu_queue") == 3
        assert v(metrics, "aiworker_queue_unacked", queue="cpu_queue") == 1
        assert v(metrics, "aiworker_queue_unacked", queue="gpu_queue") == 0
        assert v(metrics, "aiworker_queue_oldest_age_seconds", queue="cpu_queue") >= time.time() - oldest_cpu[1] - 1
        assert v(metrics, "aiworker_tracking_outbox_entries") == 0
        assert v(metrics, "aiworker_tracking_outbox_oldest_age_seconds") == 0
        # Empty queues: length 0, age 0.
        client.delete("gpu_queue")
        metrics = scrape(env)
        assert v(metrics, "aiworker_queue_length", queue="gpu_queue") == 0
        assert v(metrics, "aiworker_queue_oldest_age_seconds", queue="gpu_queue") == 0
    finally:
        assert exporter.stop() == 0, exporter.log_tail()
        channel.close()
        connection.close()
        client.close()


def test_an_unreachable_redis_is_reported_and_not_fatal(env, log_dir):
    dead = f"redis://127.0.0.1:{free_port()}/0"
    env = {**env, "AIWORKER_BROKER_URL": dead}
    exporter = ManagedProcess(
        "exporter-no-redis", [str(BIN / "aiworker-exporter")], log_dir / "exporter-no-redis.log", env=env
    )
    exporter.start()
    try:
        metrics = wait_for(lambda: _scrape_or_none(env), 60, "/metrics answering")
        assert [v(metrics, "aiworker_exporter_up", source=s) for s in ("broker", "redis", "postgres")] == [0, 0, 0]
        assert not [k for k in metrics if k[0] in ("aiworker_queue_length", "aiworker_tracking_outbox_entries")]
        assert v(metrics, LAST_POLL) == 0  # nothing counted without the outbox's state
        time.sleep(1)
        assert exporter.alive()
    finally:
        assert exporter.stop() == 0, exporter.log_tail()


def _scrape_or_none(env: dict[str, str]) -> Metrics | None:
    try:
        return scrape(env)
    except OSError:
        return None


# ---------------------------------------------------------------------- PostgreSQL rows, each once
COUNTERS = ("aiworker_tasks_published_total", "aiworker_tasks_started_total")


def counts(metrics: Metrics) -> dict[str, object]:
    """What the rows gave, by series (the exact expectations below)."""
    out: dict[str, object] = {}
    for name in COUNTERS:
        out[name] = {q: v(metrics, name, queue=q) for q in ("cpu_queue", "gpu_queue")}
    out["finished"] = {
        (q, s): v(metrics, "aiworker_tasks_finished_total", queue=q, state=s)
        for q in ("cpu_queue", "gpu_queue")
        for s in (SUCCESS, FAILURE)
    }
    out["retries"] = {p: v(metrics, "aiworker_stage_retries_total", pipeline=p) for p in ("resume", "interview_answer")}
    out["stuck"] = {
        p: v(metrics, "aiworker_pipelines_stuck", pipeline=p) for p in ("resume", "document", "interview_answer")
    }
    return out


def waits(metrics: Metrics, queue: str) -> tuple[float, float, dict[str, float]]:
    name = "aiworker_task_queue_wait_seconds"
    buckets = {le: v(metrics, f"{name}_bucket", queue=queue, le=le) for le in ("0.05", "0.1", "0.25", "0.5", "1.0")}
    return v(metrics, f"{name}_count", queue=queue), v(metrics, f"{name}_sum", queue=queue), buckets


def durations(metrics: Metrics, pipeline: str, state: str) -> tuple[float, float]:
    name = "aiworker_pipeline_duration_seconds"
    return v(metrics, f"{name}_count", pipeline=pipeline, state=state), v(
        metrics, f"{name}_sum", pipeline=pipeline, state=state
    )


def test_rows_are_counted_once_across_scrapes_and_a_restart(env, database, log_dir):
    client = redis.Redis.from_url(env["AIWORKER_BROKER_URL"])
    outbox = env["AIWORKER_TRACKING_OUTBOX"]
    t0 = time.time()
    # Before the exporter: never counted, but a document pipeline 300 s old is stuck (its estimate: the
    # stated 15 s, no history, times 4), one 2 s old is not.
    old = Run("resume", t0 - 120)
    before = (
        old.submitted()
        + old.ran(0, t0 - 119, t0 - 118)
        + old.ran(1, t0 - 117, t0 - 116)
        + old.ran(2, t0 - 115, t0 - 114)
    )
    before += Run("document", t0 - 300).submitted() + Run("document", t0 - 2).submitted()
    write(database, before)
    held = client.xadd(outbox, {"e": "[]"})  # an event not in PostgreSQL yet: later rows must wait for it
    exporter = start_exporter(env, log_dir, "exporter-rows")
    try:
        # -- batch 1 -----------------------------------------------------------------
        t1 = time.time()
        a = round(t1 - 0.9, 3)
        A, B, R = Run("resume", a), Run("resume", a + 0.05), Run("interview_answer", a + 0.2)
        b, r = B.at, R.at
        S = task("gpu_queue", a + 0.1)
        write(database, A.submitted() + B.submitted() + R.submitted() + [S])
        write(
            database,
            A.ran(0, a + 0.08, a + 0.2)  # waits 0.08 (cpu)
            + A.ran(1, a + 0.24, a + 0.4)  # 0.04 after stage 0 ended (gpu)
            + A.ran(2, a + 0.7, a + 0.8)  # 0.3 (cpu); the pipeline took 0.8
            + B.ran(0, b + 0.2, b + 0.5, FAILURE)  # 0.2 (cpu); the pipeline failed after 0.5
            + [later(S, STARTED, a + 0.8, queue="gpu_queue")]  # 0.7 (gpu)
            + [R.event(0, STARTED, r + 0.12)],  # 0.12 (gpu), still running
        )
        metrics = wait_for(
            lambda: (m := scrape(env))[(LAST_POLL, ())] > t1 + SETTLE + 0.5 and m, 30, "polls after batch 1"
        )
        assert metrics[(LAST_POLL, ())] - metrics[(LAG, ())] < t1 - 0.9  # held back by the outbox's event
        assert counts(metrics) == {
            **{name: {"cpu_queue": 0, "gpu_queue": 0} for name in COUNTERS},
            "finished": dict.fromkeys(
                [("cpu_queue", SUCCESS), ("cpu_queue", FAILURE), ("gpu_queue", SUCCESS), ("gpu_queue", FAILURE)], 0
            ),
            "retries": {"resume": 0, "interview_answer": 0},
            "stuck": {"resume": 0, "document": 1, "interview_answer": 0},
        }
        assert waits(metrics, "cpu_queue")[0] == 0 and durations(metrics, "resume", SUCCESS) == (0, 0)

        client.xdel(outbox, held)  # drained
        metrics = scrape_counting_to(env, t1)
        first = {
            "aiworker_tasks_published_total": {"cpu_queue": 3, "gpu_queue": 3},  # A0 B0 A2 | A1 S R0
            "aiworker_tasks_started_total": {"cpu_queue": 3, "gpu_queue": 3},
            "finished": {
                ("cpu_queue", SUCCESS): 2,
                ("cpu_queue", FAILURE): 1,
                ("gpu_queue", SUCCESS): 1,
                ("gpu_queue", FAILURE): 0,
            },
            "retries": {"resume": 0, "interview_answer": 0},
            "stuck": {"resume": 0, "document": 1, "interview_answer": 0},
        }
        assert counts(metrics) == first
        count, total, buckets = waits(metrics, "cpu_queue")  # 0.08 0.3 0.2
        assert (count, buckets) == (3, {"0.05": 0, "0.1": 1, "0.25": 2, "0.5": 3, "1.0": 3}) and total == pytest.approx(
            0.58, abs=1e-5
        )
        count, total, buckets = waits(metrics, "gpu_queue")  # 0.04 0.7 0.12
        assert (count, buckets) == (3, {"0.05": 1, "0.1": 1, "0.25": 2, "0.5": 2, "1.0": 3}) and total == pytest.approx(
            0.86, abs=1e-5
        )
        assert durations(metrics, "resume", SUCCESS) == (1, pytest.approx(0.8, abs=1e-5))  # not the old one
        assert durations(metrics, "resume", FAILURE) == (1, pytest.approx(0.5, abs=1e-5))
        assert durations(metrics, "interview_answer", SUCCESS) == (0, 0)

        # -- a second scrape, nothing new: the same ---------------------------------------
        time.sleep(2 * 0.2 + 0.1)
        again = scrape(env)
        assert counts(again) == first and waits(again, "cpu_queue") == waits(metrics, "cpu_queue")

        # -- batch 2: R retried its first stage (started again, its wait not again), then ran on
        t2 = time.time()
        c = round(t2 - 0.9, 3)
        X = task("cpu_queue", c + 0.1)
        write(
            database,
            [R.event(0, RETRY, c), R.event(0, STARTED, c + 0.1, attempt=1), R.event(0, SUCCESS, c + 0.2, attempt=1)]
            + R.ran(1, c + 0.35, c + 0.5)  # 0.15
            + R.ran(2, c + 0.56, c + 0.7)  # 0.06
            + [later(S, SUCCESS, c + 0.3), X, later(X, STARTED, c + 0.7, queue="cpu_queue")],  # X: 0.6
        )
        metrics = scrape_counting_to(env, t2)
        assert counts(metrics) == {
            "aiworker_tasks_published_total": {"cpu_queue": 4, "gpu_queue": 5},  # + X | + R1 R2
            "aiworker_tasks_started_total": {"cpu_queue": 4, "gpu_queue": 6},  # + X | + R0 again, R1, R2
            "finished": {
                ("cpu_queue", SUCCESS): 2,
                ("cpu_queue", FAILURE): 1,
                ("gpu_queue", SUCCESS): 5,
                ("gpu_queue", FAILURE): 0,
            },
            "retries": {"resume": 0, "interview_answer": 1},
            "stuck": {"resume": 0, "document": 1, "interview_answer": 0},
        }
        count, total, _ = waits(metrics, "gpu_queue")
        assert count == 5 and total == pytest.approx(0.86 + 0.15 + 0.06, abs=1e-5)
        count, total, _ = waits(metrics, "cpu_queue")
        assert count == 4 and total == pytest.approx(0.58 + 0.6, abs=1e-5)
        assert durations(metrics, "interview_answer", SUCCESS) == (1, pytest.approx(c + 0.7 - r, abs=1e-5))
        assert durations(metrics, "resume", SUCCESS)[0] == 1
    finally:
        assert exporter.stop() == 0, exporter.log_tail()

    # -- batch 3, while no exporter runs; a new one counts it, and only it ----------------
    t3 = time.time()
    d = round(t3 - 0.9, 3)
    D = Run("resume", d)
    write(
        database, D.submitted() + D.ran(0, d + 0.03, d + 0.1) + D.ran(1, d + 0.3, d + 0.4) + D.ran(2, d + 0.47, d + 0.6)
    )
    exporter = start_exporter(env, log_dir, "exporter-rows-restarted")
    try:
        metrics = scrape_counting_to(env, t3)
        assert counts(metrics) == {
            "aiworker_tasks_published_total": {"cpu_queue": 2, "gpu_queue": 1},
            "aiworker_tasks_started_total": {"cpu_queue": 2, "gpu_queue": 1},
            "finished": {
                ("cpu_queue", SUCCESS): 2,
                ("cpu_queue", FAILURE): 0,
                ("gpu_queue", SUCCESS): 1,
                ("gpu_queue", FAILURE): 0,
            },
            "retries": {"resume": 0, "interview_answer": 0},
            "stuck": {"resume": 0, "document": 1, "interview_answer": 0},
        }
        count, total, buckets = waits(metrics, "cpu_queue")  # 0.03 0.07
        assert (count, buckets["0.05"], buckets["0.1"]) == (2, 1, 2) and total == pytest.approx(0.1, abs=1e-5)
        assert waits(metrics, "gpu_queue")[:2] == (1, pytest.approx(0.2, abs=1e-5))
        assert durations(metrics, "resume", SUCCESS) == (1, pytest.approx(0.6, abs=1e-5))
        assert durations(metrics, "resume", FAILURE) == (0, 0)
        assert durations(metrics, "interview_answer", SUCCESS) == (0, 0)
    finally:
        assert exporter.stop() == 0, exporter.log_tail()
        client.close()
