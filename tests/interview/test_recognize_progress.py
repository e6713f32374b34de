"""The speech recognition stage's progress follows the audio transcribed: a long
answer (over two of Whisper's 30-second windows) reports PROGRESS between the
stage's start and its end, saying how many seconds of how many are done, as
svc-stt streams its segments (Celery's Redis backend publishes every state it
writes: a subscriber sees them all)."""

from __future__ import annotations

import json
import re
import time

import pytest

from bench.eval.audio import ESPEAK, NO_ESPEAK
from bench.eval.speech import synthesize

LONG_ANSWER = " ".join(
    [
        "I have built task queues with Celery and Redis for five years.",
        "Each stage of a pipeline runs on its own queue, and the workers report progress as they go.",
        "When a model service is slow, the stage retries with backoff instead of failing the whole pipeline.",
        "We keep every task in PostgreSQL so that the history survives a restart of the broker.",
    ]
    * 4
)


@pytest.mark.skipif(not ESPEAK, reason=NO_ESPEAK)
def test_a_long_answer_reports_the_seconds_transcribed(stack):
    audio = synthesize(LONG_ANSWER)
    pubsub = stack.app.aiworker.redis.pubsub(ignore_subscribe_messages=True)
    pubsub.psubscribe("celery-task-meta-*")
    try:
        submitted = stack.submit(
            "interview_answer", {"audio": stack.put_blob(audio), "question": "How do you run task queues?"}
        )
        recognize_id = submitted.task_ids[0]
        metas: list[dict] = []
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not any(m["status"] == "SUCCESS" for m in metas):
            message = pubsub.get_message(timeout=0.2)
            if message and message["channel"].decode() == f"celery-task-meta-{recognize_id}":
                metas.append(json.loads(message["data"]))
    finally:
        pubsub.close()
    results = stack.wait(submitted, timeout=300)
    assert [r.state for r in results] == ["SUCCESS"] * 3, [r.result for r in results]
    duration = results[0].result["duration_s"]
    assert duration > 60, "the answer should span more than two 30-second windows"
    progress = [m["result"] for m in metas if m["status"] == "PROGRESS"]
    transcribed = [p for p in progress if p["message"].startswith("transcribed ")]
    assert transcribed, f"no progress while transcribing: {[p['message'] for p in progress]}"
    seconds = [tuple(map(float, re.findall(r"[\d.]+", p["message"])[:2])) for p in transcribed]
    assert all(0 < done <= total and total == pytest.approx(duration, abs=0.1) for done, total in seconds)
    assert any(done < total - 10 for done, total in seconds), seconds  # reported before the end, not only at it
    assert all(10 < p["progress"] <= 95 for p in transcribed)
    steps = [p["progress"] for p in progress]
    assert steps == sorted(steps)  # it only moves forward
