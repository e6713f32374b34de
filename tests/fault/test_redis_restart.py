"""Redis (broker, results, outbox) killed with pipelines in flight and started
again: meanwhile the gateway answers 503 quickly and never hangs; afterwards
workers and gateway have reconnected, the pipelines in flight complete, new
ones run, and tracking has every record. Redis fsyncs every write to its
append-only file, as a production broker should, so the restart keeps the queues."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import httpx
import pytest

from aiworker_local.gateway_process import RunningGateway, start_gateway
from tests.fault.harness import FaultStack, resume_pdf
from tests.tracking.rows import wait_for

ANSWER_WITHIN_SECONDS = 15  # "never hangs": every call during the outage answers within this


@pytest.fixture
def gateway(fault: FaultStack, log_dir) -> Iterator[RunningGateway]:
    running = start_gateway(
        fault.env,
        log_dir,
        "fault-key-0123456789",
        name="fault-gateway",
        wait_ready=True,
        required_services="parser,embedder",
        health_cache_seconds="0.5",
    )
    yield running
    running.stop()


def submit(client: httpx.Client, seed: int) -> httpx.Response:
    return client.post(
        "/api/v1/pipelines/resume", files={"file": (f"cv-{seed}.pdf", resume_pdf(seed), "application/pdf")}
    )


def timed(call) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def overall(client: httpx.Client, pipeline_id: str) -> str:
    return client.get(f"/api/v1/tasks/ai-pipeline/{pipeline_id}/status").json()["data"]["overall_state"]


def test_redis_killed_and_restarted_under_load(fault: FaultStack, gateway: RunningGateway):
    client = gateway.client(timeout=ANSWER_WITHIN_SECONDS + 5)
    in_flight = []
    for seed in range(400, 406):
        response = submit(client, seed)
        assert response.status_code == 202, response.text
        in_flight.append(response.json()["data"]["pipeline_id"])

    os.kill(fault.redis_proc.pid, signal.SIGKILL)
    fault.redis_proc.proc.wait(timeout=10)
    try:
        response, seconds = timed(lambda: submit(client, 499))
        assert response.status_code == 503 and seconds < ANSWER_WITHIN_SECONDS, (response.status_code, seconds)
        assert response.json()["error"]["code"] == "UNAVAILABLE"
        assert "nothing was submitted" in response.json()["error"]["message"]

        def readiness_says_503() -> httpx.Response | None:  # once its short cache (0.5 s) has expired
            response, seconds = timed(lambda: client.get("/readyz"))
            assert seconds < ANSWER_WITHIN_SECONDS
            return response if response.status_code == 503 else None

        response = wait_for(readiness_says_503, 5, "/readyz 503 while Redis is down")
        assert response.json()["parts"]["redis"]["ready"] is False
        assert client.get("/healthz").status_code == 200  # alive all along: no restart wanted
        response, seconds = timed(lambda: client.get(f"/api/v1/tasks/ai-pipeline/{in_flight[0]}/status"))
        assert response.status_code in (200, 503) and seconds < ANSWER_WITHIN_SECONDS, response.text
        time.sleep(3)  # workers and drainers meet the outage too
    finally:
        fault.restart_redis()

    wait_for(lambda: client.get("/readyz").status_code == 200, 60, "gateway ready again (workers reconnected)")
    assert fault.beat.alive(), fault.beat.log_tail()  # it re-sends what the outage lost
    try:
        wait_for(
            lambda: all(overall(client, p) == "SUCCESS" for p in in_flight),
            120,
            "the pipelines in flight during the outage completed",
            interval=1,
        )
    except TimeoutError as exc:
        stuck = [
            client.get(f"/api/v1/pipelines/{p}").json()["data"] for p in in_flight if overall(client, p) != "SUCCESS"
        ]
        stages = [[(t["task_id"][:8], t["status"], t["retries"]) for t in s["tasks"]] for s in stuck]
        raise TimeoutError(f"{exc}: {stages}") from None
    after = [submit(client, seed).json()["data"]["pipeline_id"] for seed in range(410, 412)]
    wait_for(lambda: all(overall(client, p) == "SUCCESS" for p in after), 60, "new pipelines completed", interval=0.5)

    statuses = [client.get(f"/api/v1/pipelines/{p}").json()["data"] for p in in_flight + after]
    for status in statuses:  # every stage recorded once and successful
        assert [t["status"] for t in status["tasks"]] == ["SUCCESS"] * 3, status
        assert len({t["task_id"] for t in status["tasks"]}) == 3
