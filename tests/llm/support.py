"""Helpers of the LLM tests: requests, calls, the service's own log and metrics."""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from aiworker.llm.v1 import llm_pb2
from aiworker_local.services import RunningService

# Flags of the session's service: four generations run together, one more waits
# for a place, the next is refused; the batch's KV budget holds one generation
# of max_new_tokens=MAX_NEW_TOKENS_LIMIT but not two.
MAX_BATCH_SEQUENCES = 4
MAX_QUEUED_REQUESTS = 1
MAX_NEW_TOKENS_LIMIT = 2048
MAX_BATCH_TOKENS = 4096

SHORT_PROMPT = "Name three colors."
# Asks for far more text than any test lets the model write.
LONG_PROMPT = "Write a very long story about a dragon, with many chapters."


def request(prompt: str = SHORT_PROMPT, max_new_tokens: int = 16, **kwargs: Any) -> llm_pb2.GenerateRequest:
    return llm_pb2.GenerateRequest(
        messages=[llm_pb2.ChatMessage(role="user", content=prompt)], max_new_tokens=max_new_tokens, **kwargs
    )


def generate(stub, req: llm_pb2.GenerateRequest, timeout: float = 60, **kwargs: Any) -> llm_pb2.GenerateResponse:
    return stub.Generate(req, timeout=timeout, **kwargs)


def stream(stub, req: llm_pb2.GenerateRequest, timeout: float = 60) -> tuple[list[str], llm_pb2.GenerationDone]:
    """The deltas' texts and the final `done` message (which must come last, once)."""
    deltas: list[str] = []
    done: list[llm_pb2.GenerationDone] = []
    for message in stub.GenerateStream(req, timeout=timeout):
        assert not done, "a message came after `done`"
        if message.HasField("delta"):
            deltas.append(message.delta.text)
        else:
            done.append(message.done)
    assert len(done) == 1
    return deltas, done[0]


def request_id() -> str:
    return f"llm-test-{uuid.uuid4().hex[:12]}"


def log_events(service: RunningService, event: str, rid: str | None = None) -> list[dict[str, Any]]:
    """The service's JSON log lines named `event` (and bound to request id `rid`)."""
    found = []
    for line in service.process.log_path.read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if record.get("event") == event and (rid is None or record.get("request_id") == rid):
            found.append(record)
    return found


def wait_for_event(service: RunningService, event: str, rid: str, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = log_events(service, event, rid)
        if events:
            return events[-1]
        time.sleep(0.2)
    raise AssertionError(f"no {event!r} log line for request {rid} within {timeout:.0f}s")


def metric_samples(service: RunningService) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the service's /metrics: {(name, sorted labels but `service`): value}."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{service.metrics_port}/metrics", timeout=5).read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "service"))
            samples[sample.name, labels] = sample.value
    return samples


def metric(service: RunningService, name: str, **labels: str) -> float:
    return metric_samples(service).get((name, tuple(sorted(labels.items()))), 0.0)


def completion_tokens_by_reason(service: RunningService) -> dict[str, tuple[float, float]]:
    """{finish_reason: (generations, tokens)} from the aiworker_llm_completion_tokens histogram."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{service.metrics_port}/metrics", timeout=5).read().decode()
    counts: dict[str, float] = {}
    sums: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "aiworker_llm_completion_tokens":
            continue
        for sample in family.samples:
            reason = sample.labels.get("finish_reason", "")
            if sample.name.endswith("_count"):
                counts[reason] = sample.value
            elif sample.name.endswith("_sum"):
                sums[reason] = sample.value
    return {reason: (counts[reason], sums.get(reason, 0.0)) for reason in counts}
