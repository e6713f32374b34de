"""What must not depend on one process's memory: one beat sends the schedule
even when two run (the second stays idle and takes over when the first dies),
a beat outlives its Redis going away, and a cancelled stage is refused by a
worker started after the cancel. Real beats and workers, on a broker database
of this module's own."""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import pytest

from aiworker_local.procs import ManagedProcess
from aiworker_local.stack import make_app
from aiworker_local.workers import start_worker
from orchestrator import keys
from orchestrator.assembly import registry_queries
from orchestrator.broker.revokes import revoke
from orchestrator.pipelines.submission import submit
from tests.support.infra import spare_redis_database, start_redis
from tests.tracking.rows import wait_for

BIN = Path(sys.executable).parent
SENT = re.compile(r"Sending due task tasks\.maintenance\.redeliver_lost")


@pytest.fixture(scope="module")
def own_broker(stack, redis_url):
    with spare_redis_database(redis_url, 3) as broker:
        yield {**stack.env, "AIWORKER_BROKER_URL": broker}


def sends(beat: ManagedProcess) -> int:
    return len(SENT.findall(beat.log_path.read_text(errors="replace")))


def test_two_beats_send_the_schedule_once_and_the_standby_takes_over(own_broker, log_dir, tmp_path):
    env = {**own_broker, "AIWORKER_LOST_TASK_CHECK_SECONDS": "1", "AIWORKER_BEAT_LOCK_SECONDS": "3"}
    beats = [
        ManagedProcess(
            f"beat-{i}",
            [str(BIN / "aiworker-beat"), "--schedule", str(tmp_path / f"schedule-{i}")],
            log_dir / f"beat-{i}-{time.time_ns()}.log",
            env=env,
        ).start()
        for i in range(2)
    ]
    try:
        wait_for(lambda: sum(sends(b) for b in beats) >= 4, 60, "the schedule being sent")
        time.sleep(3)
        counts = [sends(b) for b in beats]
        active = 0 if counts[0] else 1
        assert counts[1 - active] == 0, counts  # the standby sent nothing
        assert "beat_standby" in beats[1 - active].log_path.read_text()
        beats[active].signal(9)  # dies without releasing the lease: the standby waits it out
        died = time.monotonic()
        wait_for(lambda: sends(beats[1 - active]) >= 2, 30, "the standby taking over")
        assert time.monotonic() - died < 3 + 3 + 5  # the lease, a check period, slack
    finally:
        for beat in beats:
            beat.stop()


def test_a_beat_outlives_its_redis_and_sends_again_once_it_is_back(stack, log_dir, tmp_path):
    """Redis killed under a running beat, then started again on its port: the beat
    waits it out (it must be there to re-send the stages that outage lost)."""
    redis_proc, broker = start_redis(tmp_path / "redis")
    env = {**stack.env, "AIWORKER_BROKER_URL": broker, "AIWORKER_LOST_TASK_CHECK_SECONDS": "1"}
    env["AIWORKER_BEAT_LOCK_SECONDS"] = "3"
    beat = ManagedProcess(
        "beat-outage",
        [str(BIN / "aiworker-beat"), "--schedule", str(tmp_path / "schedule")],
        log_dir / f"beat-outage-{time.time_ns()}.log",
        env=env,
    ).start()
    try:
        wait_for(lambda: sends(beat) >= 1, 60, "the schedule being sent")
        redis_proc.signal(9)
        redis_proc.proc.wait(timeout=10)
        wait_for(lambda: "beat_lock_unreachable" in beat.log_path.read_text(), 30, "the beat meeting the outage")
        time.sleep(3)  # a few ticks without Redis
        assert beat.alive(), beat.log_tail()
        before = sends(beat)
        redis_proc.start()
        wait_for(lambda: sends(beat) > before, 30, "the schedule sent again once Redis is back")
        assert beat.alive()
    finally:
        beat.stop()
        redis_proc.stop()


def test_a_worker_started_after_a_cancel_refuses_the_cancelled_stage(own_broker, log_dir):
    app = make_app(own_broker)
    submitted = submit(app, "ai_pipeline", {"text": "Cancelled before any worker was there."})
    revoke(app, submitted.task_ids)  # nobody consumes this broker yet: no worker hears the broadcast
    assert set(submitted.task_ids) <= {m.decode() for m in app.aiworker.redis.zrange(keys.REVOKED, 0, -1)}
    worker = start_worker(app, "cpu_queue,gpu_queue", own_broker, log_dir, "late")
    try:
        queries = registry_queries(app.aiworker.settings)
        status = wait_for(
            lambda: (s := queries.pipeline_status(submitted.pipeline_id)) and s.overall_state == "REVOKED" and s,
            60,
            "the pipeline revoked",
        )
        assert [t.status for t in status.tasks] == ["REVOKED", "SKIPPED", "SKIPPED", "SKIPPED"]
        assert app.AsyncResult(submitted.task_ids[0]).state == "REVOKED"
    finally:
        worker.stop()
