"""Priority on the broker: API priority 0–9 (9 most urgent) lands on the Redis
priority list kombu serves first, a more urgent submission overtakes a waiting
one, and a retry is sent at the priority the pipeline was submitted with.

A "held" gateway sends to a private Redis that no worker reads, so what it sends
stays where the test can look; its results, progress and tracking are the
stack's (it can retry the stack's pipelines). What it sent is handed to the
stack's broker afterwards, so every pipeline still ends."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import httpx
import kombu
import pytest
import redis

from aiworker_local.gateway_process import RunningGateway, start_gateway
from orchestrator.app import celery_config
from orchestrator.broker.queue_state import queue_keys
from tests.gateway.test_rest import wait_done
from tests.support.infra import start_redis
from tests.support.keys import API_KEY

JUNK_PDF = b"%PDF-1.4 junk\n%%EOF"  # passes the upload check, fails parsing at once


@dataclass
class HeldGateway:
    gateway: RunningGateway
    broker_url: str
    broker: redis.Redis
    transport_options: dict

    def client(self) -> httpx.Client:
        return self.gateway.client()

    def keys(self) -> dict[str, list[str]]:
        return queue_keys(self.transport_options)

    def where(self, task_id: str) -> str | None:
        """The Redis list (queue and priority level) holding `task_id`'s message."""
        for keys in self.keys().values():
            for key in keys:
                if any(json.loads(raw)["headers"]["id"] == task_id for raw in self.broker.lrange(key, 0, -1)):
                    return key
        return None

    def hand_over(self, to: redis.Redis) -> None:
        """Moves every queued message to the same list of the stack's broker, oldest first."""
        for keys in self.keys().values():
            for key in keys:
                while (raw := self.broker.rpop(key)) is not None:
                    to.lpush(key, raw)


@pytest.fixture(scope="module")
def held(stack, log_dir, tmp_path_factory):
    proc, broker_url = start_redis(tmp_path_factory.mktemp("held-broker"))
    settings = stack.settings
    env = {
        **stack.env,
        "AIWORKER_BROKER_URL": broker_url,
        "AIWORKER_RESULT_BACKEND": settings.result_backend,
        "AIWORKER_REDIS_URL": settings.redis_url,
    }
    gateway = start_gateway(env, log_dir, API_KEY, name="gateway-held")
    broker = redis.Redis.from_url(broker_url)
    options = celery_config(settings)["broker_transport_options"]
    try:
        yield HeldGateway(gateway, broker_url, broker, options)
    finally:
        gateway.stop()
        stack_broker = redis.Redis.from_url(settings.broker_url)
        HeldGateway(gateway, broker_url, broker, options).hand_over(stack_broker)
        stack_broker.close()
        broker.close()
        proc.stop()


def submit_text(client: httpx.Client, priority: int | None) -> dict:
    files = {"file": ("note.txt", b"Priorities decide who goes first.", "text/plain")}
    data = {} if priority is None else {"priority": str(priority)}
    response = client.post("/api/v1/pipelines/document", files=files, data=data)
    assert response.status_code == 202, response.text
    return response.json()["data"]


def test_a_more_urgent_submission_overtakes_a_waiting_one_on_the_broker(held):
    with held.client() as client:
        low = submit_text(client, 1)
        default = submit_text(client, None)
        urgent = submit_text(client, 9)
    first = {name: data["task_ids"][0] for name, data in (("low", low), ("default", default), ("urgent", urgent))}
    # Redis serves level 0 first: API priority p waits on level 9 - p (level 0 is the bare queue name).
    assert held.where(first["urgent"]) == "cpu_queue"
    assert held.where(first["default"]) == "cpu_queue:4"
    assert held.where(first["low"]) == "cpu_queue:8"
    # The order a consumer takes them in, through kombu's Redis transport as a worker does:
    # the urgent one first though it was sent last.
    taken = []
    with kombu.Connection(held.broker_url, transport_options=held.transport_options) as conn:
        channel = conn.default_channel
        messages = []
        deadline = time.monotonic() + 10
        while len(messages) < 3 and time.monotonic() < deadline:
            message = channel.basic_get("cpu_queue")
            if message is None:
                time.sleep(0.1)
                continue
            messages.append(message)
            taken.append(message.headers["id"])
        for message in reversed(messages):  # back where they were, for the hand-over
            message.reject(requeue=True)
    assert taken == [first["urgent"], first["default"], first["low"]]
    assert {held.where(task_id) for task_id in first.values()} == {"cpu_queue", "cpu_queue:4", "cpu_queue:8"}


def test_retry_is_sent_at_the_priority_the_pipeline_was_submitted_with(held, client):
    submitted = client.post(
        "/api/v1/pipelines/resume", data={"priority": "8"}, files={"file": ("junk.pdf", JUNK_PDF, "application/pdf")}
    )
    assert submitted.status_code == 202, submitted.text
    pipeline_id = submitted.json()["data"]["pipeline_id"]
    failed = wait_done(client, pipeline_id, timeout=60)
    assert [t["status"] for t in failed["tasks"]] == ["FAILURE", "SKIPPED", "SKIPPED"]
    with held.client() as held_client:
        retried = held_client.post(f"/api/v1/pipelines/{pipeline_id}/retry")
    assert retried.status_code == 202, retried.text
    first = retried.json()["data"]["task_ids"][0]
    assert held.where(first) == "cpu_queue:1"  # priority 8 (the default 5 would be cpu_queue:4)
