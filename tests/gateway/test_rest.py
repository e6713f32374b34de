"""The REST API against a running stack: the task-chain shapes, submissions with
uploads, status, SSE, cancel, retry, history, metrics, health, auth, errors."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from orchestrator.pipelines.submission import submit
from orchestrator.storage.db import engine_for
from orchestrator.tracking.states import PIPELINE_TERMINAL
from svc_parser.model import sample_pdf

SAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "samples"


def wait_done(client: httpx.Client, pipeline_id: str, timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data = client.get(f"/api/v1/pipelines/{pipeline_id}").json()["data"]
        if data["overall_state"] in PIPELINE_TERMINAL and all(t["ready"] for t in data["tasks"]):
            return data
        time.sleep(0.3)
    raise TimeoutError(f"pipeline {pipeline_id} not done: {data}")


def test_readyz_aggregates_every_part_with_devices(gateway):
    body = httpx.get(f"{gateway.url}/readyz", timeout=10).json()
    assert body["ready"] is True
    parts = body["parts"]
    assert {"parser", "embedder", "llm", "stt", "redis", "postgres", "workers:cpu_queue", "workers:gpu_queue"} <= set(
        parts
    )
    for service in ("parser", "embedder", "llm", "stt"):
        assert parts[service]["status"] == "SERVING" and parts[service]["device"] == "cpu"
    assert "cpu@test" in parts["workers:cpu_queue"]["detail"]
    one = httpx.get(f"{gateway.url}/health/llm", timeout=10)
    assert one.status_code == 200 and one.json()["parts"]["llm"]["device"] == "cpu"
    assert httpx.get(f"{gateway.url}/health/nope", timeout=10).status_code == 404
    assert httpx.get(f"{gateway.url}/healthz").json() == {"status": "ok"}


def test_ai_pipeline_seed_shapes(client):
    response = client.post(
        "/api/v1/tasks/ai-pipeline",
        json={"text": "Celery and Redis run a four stage pipeline.", "options": {"task": "keywords"}, "priority": 5},
    )
    assert response.status_code == 202
    body = response.json()
    assert body["success"] is True
    data = body["data"]
    assert set(data) >= {"pipeline_id", "status", "message", "estimated_duration"}
    assert data["estimated_duration"] > 0
    pipeline_id = data["pipeline_id"]
    wait_done(client, pipeline_id)
    status = client.get(f"/api/v1/tasks/ai-pipeline/{pipeline_id}/status").json()
    assert status["success"] is True
    data = status["data"]
    assert data["pipeline_id"] == pipeline_id and data["overall_state"] == "SUCCESS" and data["total_steps"] == 4
    assert [t["step"] for t in data["tasks"]] == [1, 2, 3, 4]
    assert [t["task_name"] for t in data["tasks"]] == [
        "tasks.ai_pipeline.stage1_preprocessing",
        "tasks.ai_pipeline.stage2_feature_extraction",
        "tasks.ai_pipeline.stage3_model_inference",
        "tasks.ai_pipeline.stage4_post_processing",
    ]
    assert all(t["status"] == "SUCCESS" and t["ready"] and t["task_id"] for t in data["tasks"])
    assert all(t["result"] for t in data["tasks"])  # a short summary of each stage's result


def test_uploads_run_the_file_pipelines(client):
    pdf = sample_pdf(["Lee Jisoo. Data engineer. Built Kafka and Celery pipelines."], title="Lee Jisoo")
    resume = client.post("/api/v1/pipelines/resume", files={"file": ("../../etc/cv.pdf", pdf, "application/pdf")})
    assert resume.status_code == 202, resume.text
    resume_id = resume.json()["data"]["pipeline_id"]
    document = client.post(
        "/api/v1/pipelines/document",
        files={"file": ("notes.txt", "회의록: GPU 서버 증설 결정.".encode(), "text/plain")},
    )
    assert document.status_code == 202, document.text
    assert wait_done(client, resume_id)["overall_state"] == "SUCCESS"
    answer = client.post(
        "/api/v1/pipelines/interview-answer",
        files={"file": ("answer.wav", (SAMPLES / "answer.wav").read_bytes(), "audio/wav")},
        data={"resume_id": resume_id, "question": "Tell me about your pipelines."},
    )
    assert answer.status_code == 202, answer.text
    for pipeline_id in (document.json()["data"]["pipeline_id"], answer.json()["data"]["pipeline_id"]):
        assert wait_done(client, pipeline_id)["overall_state"] == "SUCCESS"
    preload = client.post("/api/v1/pipelines/llm-preload")
    assert preload.status_code == 202
    assert wait_done(client, preload.json()["data"]["pipeline_id"])["overall_state"] == "SUCCESS"


def test_events_stream_until_the_pipeline_ends(client, gateway):
    pipeline_id = client.post("/api/v1/tasks/ai-pipeline", json={"text": "Stream me."}).json()["data"]["pipeline_id"]
    states, events = [], []
    with httpx.stream(
        "GET", f"{gateway.url}/api/v1/pipelines/{pipeline_id}/events", headers=gateway.headers, timeout=240
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        event = None
        for line in response.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
                events.append(event)
            elif line.startswith("data:") and event == "status":
                states.append(json.loads(line.split(":", 1)[1]))
    assert events[-1] == "end"
    assert states[-1]["overall_state"] == "SUCCESS" and states[-1]["progress"] == 100
    assert len(states) >= 2 and states[0]["overall_state"] != "SUCCESS"  # it streamed a change
    progress = [s["progress"] for s in states]
    assert progress == sorted(progress)


def test_history_filters_and_cursor(client):
    # Its own pipeline (four rows, one a stage1 SUCCESS), whatever ran before it.
    submitted = client.post("/api/v1/tasks/ai-pipeline", json={"text": "History of its own."}).json()["data"]
    assert wait_done(client, submitted["pipeline_id"])["overall_state"] == "SUCCESS"
    deadline = time.monotonic() + 30  # history reads PostgreSQL: its rows land once drained
    while time.monotonic() < deadline:
        mine = client.get("/api/v1/tasks/history", params={"hours": 1, "pipeline": "ai_pipeline", "limit": 200})
        if sum(t["pipeline_id"] == submitted["pipeline_id"] for t in mine.json()["data"]["items"]) == 4:
            break
        time.sleep(0.2)
    first = client.get("/api/v1/tasks/history", params={"hours": 1, "limit": 3}).json()["data"]
    assert len(first["items"]) == 3 and first["next_cursor"]
    second = client.get(
        "/api/v1/tasks/history", params={"hours": 1, "limit": 3, "cursor": first["next_cursor"]}
    ).json()["data"]
    assert not {t["task_id"] for t in first["items"]} & {t["task_id"] for t in second["items"]}
    created = [t["created_at"] for t in first["items"] + second["items"]]
    assert created == sorted(created, reverse=True)
    ok = client.get(
        "/api/v1/tasks/history",
        params={"hours": 1, "status": "SUCCESS", "task_name": "tasks.ai_pipeline.stage1_preprocessing"},
    ).json()["data"]
    assert ok["items"] and all(
        t["status"] == "SUCCESS" and t["task_name"].endswith("stage1_preprocessing") for t in ok["items"]
    )


def test_metrics_summary_and_prometheus(client):
    data = client.get("/api/v1/metrics/summary", params={"window_hours": 1}).json()["data"]
    assert data["total_tasks"] > 0 and 0 <= data["success_rate"] <= 1
    assert {"cpu_queue", "gpu_queue"} <= set(data["queue_depth"])
    names = {t["task_name"] for t in data["by_task"]}
    assert "tasks.ai_pipeline.stage3_model_inference" in names
    prometheus = client.get("/metrics")
    assert prometheus.status_code == 200 and "aiworker_http_requests_total" in prometheus.text


def test_priority_is_estimated_and_validated(client):
    bad = client.post("/api/v1/tasks/ai-pipeline", json={"text": "x", "priority": 10})
    assert bad.status_code == 422
    assert any(d["field"] == "body.priority" for d in bad.json()["error"]["details"])


def test_cancel_revokes_stages_not_yet_run(client, gateway):
    long_text = "Explain in detail. " * 50
    pipeline_id = client.post(
        "/api/v1/tasks/ai-pipeline", json={"text": long_text, "options": {"task": "summarize", "max_new_tokens": 400}}
    ).json()["data"]["pipeline_id"]
    cancelled = client.post(f"/api/v1/pipelines/{pipeline_id}/cancel", params={"terminate": "true"})
    assert cancelled.status_code == 200, cancelled.text
    data = wait_done(client, pipeline_id, timeout=120)
    assert data["overall_state"] == "REVOKED"
    assert "SUCCESS" != data["tasks"][-1]["status"]
    again = client.post(f"/api/v1/pipelines/{pipeline_id}/cancel")
    assert again.status_code == 409


def start_until_llm_stage_runs(client: httpx.Client, max_new_tokens: int, timeout: float = 60) -> dict:
    """An ai_pipeline whose third stage (the LLM generation) has started: its status then."""
    text = "Celery workers take tasks from Redis queues and call model services over gRPC. " * 20
    pipeline_id = client.post(
        "/api/v1/tasks/ai-pipeline",
        json={"text": text, "options": {"task": "summarize", "max_new_tokens": max_new_tokens}},
    ).json()["data"]["pipeline_id"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data = client.get(f"/api/v1/pipelines/{pipeline_id}").json()["data"]
        stage = data["tasks"][2]
        if stage["status"] in ("STARTED", "PROGRESS"):
            return data
        assert not stage["ready"], f"the LLM stage ended before it was seen running: {data}"
        time.sleep(0.05)
    raise TimeoutError(f"the LLM stage of {pipeline_id} did not start")


def test_cancel_with_terminate_stops_the_running_stage(client):
    running = start_until_llm_stage_runs(client, max_new_tokens=1500)
    pipeline_id, tasks = running["pipeline_id"], running["tasks"]
    cancelled = client.post(f"/api/v1/pipelines/{pipeline_id}/cancel", params={"terminate": "true"})
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["data"]["running"] == [tasks[2]["task_id"]]
    assert cancelled.json()["data"]["revoked"] == [tasks[3]["task_id"]]
    started = time.monotonic()
    data = wait_done(client, pipeline_id, timeout=30)
    assert time.monotonic() - started < 20  # stopped, not run to its 1500 tokens
    assert data["overall_state"] == "REVOKED"
    assert [t["status"] for t in data["tasks"][:3]] == ["SUCCESS", "SUCCESS", "REVOKED"]
    assert "terminated" in (data["tasks"][2]["result"] or "")
    assert data["tasks"][3]["status"] in ("SKIPPED", "REVOKED") and data["tasks"][3]["started_at"] is None


def test_cancel_without_terminate_lets_the_running_stage_finish(client):
    running = start_until_llm_stage_runs(client, max_new_tokens=24)
    pipeline_id, tasks = running["pipeline_id"], running["tasks"]
    cancelled = client.post(f"/api/v1/pipelines/{pipeline_id}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["data"]["running"] == [tasks[2]["task_id"]]
    assert cancelled.json()["data"]["terminated"] is False
    data = wait_done(client, pipeline_id, timeout=60)
    assert data["overall_state"] == "REVOKED"
    assert [t["status"] for t in data["tasks"][:3]] == ["SUCCESS", "SUCCESS", "SUCCESS"]
    assert data["tasks"][3]["status"] in ("SKIPPED", "REVOKED") and data["tasks"][3]["started_at"] is None


def test_retry_reruns_from_the_failed_stage_only(client, stack):
    resume_id = str(uuid.uuid4())
    answer = client.post(
        "/api/v1/pipelines/interview-answer",
        files={"file": ("a.wav", (SAMPLES / "answer.wav").read_bytes(), "audio/wav")},
        data={"resume_id": resume_id},
    )
    pipeline_id = answer.json()["data"]["pipeline_id"]
    failed = wait_done(client, pipeline_id)
    assert [t["status"] for t in failed["tasks"]] == ["SUCCESS", "FAILURE", "SKIPPED"]
    assert "not found" in failed["tasks"][1]["result"]
    first_stt_task = failed["tasks"][0]["task_id"]
    # The missing resume appears (its document id is its pipeline id).
    made = submit(
        stack.app, "resume", {"pdf": stack.put_blob(sample_pdf(["Park. Celery and Redis."]))}, pipeline_id=resume_id
    )
    stack.wait(made)
    retried = client.post(f"/api/v1/pipelines/{pipeline_id}/retry")
    assert retried.status_code == 202, retried.text
    new_ids = retried.json()["data"]["task_ids"]
    assert len(new_ids) == 2  # analyze_answer and generate only
    assert client.get(f"/api/v1/pipelines/{pipeline_id}").json()["data"]["tasks"][1]["task_id"] == new_ids[0]
    done = wait_done(client, pipeline_id)
    assert [t["status"] for t in done["tasks"]] == ["SUCCESS"] * 3
    assert done["tasks"][0]["task_id"] == first_stt_task  # transcription was not redone
    assert done["tasks"][1]["task_id"] != failed["tasks"][1]["task_id"]
    assert client.post(f"/api/v1/pipelines/{pipeline_id}/retry").status_code == 409


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code"),
    [
        ("get", "/api/v1/pipelines/00000000-0000-0000-0000-000000000000", {}, 404, "NOT_FOUND"),
        ("get", "/api/v1/tasks/ai-pipeline/unknown/status", {}, 404, "NOT_FOUND"),
        (
            "post",
            "/api/v1/tasks/ai-pipeline",
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
            422,
            "INVALID_ARGUMENT",
        ),
        (
            "post",
            "/api/v1/tasks/ai-pipeline",
            {"json": {"text": "x", "options": {"task": "poetry"}}},
            422,
            "INVALID_ARGUMENT",
        ),
        (
            "post",
            "/api/v1/pipelines/resume",
            {"files": {"file": ("a.pdf", b"not a pdf", "application/pdf")}},
            400,
            "INVALID_ARGUMENT",
        ),
        (
            "post",
            "/api/v1/pipelines/resume",
            {"files": {"file": ("a.png", b"\x89PNG", "image/png")}},
            400,
            "INVALID_ARGUMENT",
        ),
        (
            "post",
            "/api/v1/pipelines/resume",
            {"files": {"file": ("a.pdf", b"", "application/pdf")}},
            400,
            "INVALID_ARGUMENT",
        ),
        ("post", "/api/v1/pipelines/resume", {}, 422, "INVALID_ARGUMENT"),
        (
            "post",
            "/api/v1/pipelines/document",
            {"files": {"file": ("a.txt", b"\xff\xfe\xfa", "text/plain")}},
            400,
            "INVALID_ARGUMENT",
        ),
        (
            "post",
            "/api/v1/pipelines/interview-answer",
            {"files": {"file": ("a.txt", b"hello", "text/plain")}},
            400,
            "INVALID_ARGUMENT",
        ),
        ("get", "/api/v1/tasks/history", {"params": {"hours": -1}}, 422, "INVALID_ARGUMENT"),
        ("get", "/api/v1/tasks/history", {"params": {"cursor": "garbage!"}}, 400, "INVALID_ARGUMENT"),
        ("get", "/api/v1/tasks/history", {"params": {"status": "NOPE"}}, 422, "INVALID_ARGUMENT"),
    ],
)
def test_errors_are_json_with_a_code_and_message(client, method, path, kwargs, status, code):
    response = getattr(client, method)(path, **kwargs)
    assert response.status_code == status, response.text
    if code:
        body = response.json()
        assert body["success"] is False and body["error"]["code"] == code and body["error"]["message"]


def test_the_generic_route_takes_json_and_named_file_fields(client):
    by_json = client.post("/api/v1/pipelines/ai_pipeline", json={"text": "Generic JSON.", "priority": 7})
    assert by_json.status_code == 202, by_json.text
    assert by_json.json()["data"]["pipeline"] == "ai_pipeline" and len(by_json.json()["data"]["task_ids"]) == 4
    pdf = sample_pdf(["Named field. Go and Rust."])
    by_field = client.post(
        "/api/v1/pipelines/resume",
        files={"pdf": ("cv.pdf", pdf, "application/pdf")},
        data={"input": '{"max_pages": 1}'},
    )
    assert by_field.status_code == 202, by_field.text
    assert wait_done(client, by_field.json()["data"]["pipeline_id"])["overall_state"] == "SUCCESS"
    for body, status, says in (
        ({"json": ["not", "an", "object"]}, 422, "object"),
        ({"json": {"text": "x", "priority": "high"}}, 422, "priority"),
        ({"content": b"text=x", "headers": {"content-type": "text/plain"}}, 422, "multipart"),
        ({"json": {"text": "x", "unknown_field_is_ignored": 1, "options": {"task": "poetry"}}}, 422, "poetry"),
    ):
        response = client.post("/api/v1/pipelines/ai-pipeline", **body)
        assert response.status_code == status and says in response.json()["error"]["message"], response.text
    unknown = client.post("/api/v1/pipelines/no_such_pipeline", json={})
    assert unknown.status_code == 404 and "known:" in unknown.json()["error"]["message"]
    extra_file = client.post(
        "/api/v1/pipelines/ai-pipeline", files={"file": ("a.txt", b"x", "text/plain")}, data={"text": "x"}
    )
    assert extra_file.status_code == 422 and "takes no file" in extra_file.json()["error"]["message"]


def wait_recorded(client: httpx.Client, pipeline_id: str, task_id: str, timeout: float = 60) -> None:
    """Until tracking (PostgreSQL, not the live hash) holds the task as SUCCESS."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tasks = client.get(f"/api/v1/pipelines/{pipeline_id}/tasks").json()["data"]
        if any(t["task_id"] == task_id and t["status"] == "SUCCESS" for t in tasks):
            return
        time.sleep(0.2)
    raise AssertionError(f"task {task_id} was not recorded as SUCCESS in {timeout} s: {tasks}")


def test_result_is_the_final_stage_whole_result(client, stack):
    long_text = " ".join(f"Sentence {i} about queues, workers and retries." for i in range(40))
    pipeline_id = client.post("/api/v1/pipelines/ai-pipeline", json={"text": long_text}).json()["data"]["pipeline_id"]
    running = client.get(f"/api/v1/pipelines/{pipeline_id}/result")
    assert running.status_code == 409 and running.json()["error"]["code"] == "FAILED_PRECONDITION"
    status = wait_done(client, pipeline_id)
    body = client.get(f"/api/v1/pipelines/{pipeline_id}/result").json()["data"]
    assert body["pipeline_id"] == pipeline_id and body["task_id"] == status["tasks"][-1]["task_id"]
    output = body["result"]["output"]
    assert output["input_stats"]["chars"] == len(long_text)  # whole: the status keeps 200 characters
    assert len(status["tasks"][-1]["result"]) <= 200 < len(json.dumps(body["result"]))
    assert client.get("/api/v1/pipelines/no-such-id/result").status_code == 404
    last = status["tasks"][-1]["task_id"]
    wait_recorded(client, pipeline_id, last)  # the live overlay says SUCCESS before the drainer writes the row
    stack.app.backend.forget(last)  # as when results expire (or Redis lost them): tracking's copy serves
    again = client.get(f"/api/v1/pipelines/{pipeline_id}/result")
    assert again.status_code == 200 and again.json()["data"]["result"] == body["result"]
    with engine_for(stack.settings.tracking_database_url).begin() as conn:  # as when tracked rows expire
        conn.execute(text("UPDATE task_info SET output = NULL WHERE task_id = :id"), {"id": last})
    gone = client.get(f"/api/v1/pipelines/{pipeline_id}/result")
    assert gone.status_code == 410 and gone.json()["error"]["code"] == "GONE"
    assert "no longer stored" in gone.json()["error"]["message"]


def test_a_pipelines_tasks_with_their_errors_and_tracebacks(client):
    bad_pdf = b"%PDF-1.4\n1 0 obj garbage\n%%EOF"
    response = client.post("/api/v1/pipelines/resume", files={"file": ("bad.pdf", bad_pdf, "application/pdf")})
    pipeline_id = response.json()["data"]["pipeline_id"]
    assert wait_done(client, pipeline_id)["overall_state"] == "FAILURE"
    # The status lays the live hash over PostgreSQL; the task rows come from PostgreSQL alone,
    # once a drainer has written the failure (moments later under load).
    deadline = time.monotonic() + 30
    while True:
        tasks = client.get(f"/api/v1/pipelines/{pipeline_id}/tasks").json()["data"]
        if tasks and tasks[0]["status"] == "FAILURE" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert [t["stage_index"] for t in tasks] == [0, 1, 2]
    assert tasks[0]["status"] == "FAILURE" and tasks[0]["error_message"] and tasks[0]["traceback"]
    assert tasks[0]["args"] and tasks[0]["worker"] and tasks[0]["queue"] == "cpu_queue"
    assert [t["status"] for t in tasks[1:]] == ["SKIPPED", "SKIPPED"]
    assert client.get("/api/v1/pipelines/no-such-id/tasks").status_code == 404
