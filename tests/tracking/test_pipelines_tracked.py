"""Every pipeline of the orchestrator on the whole back end (the session's
`stack`: four services, a cpu and a gpu worker): one tracked row per task
with its chain links, queue and worker, all SUCCESS, and the status view."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.assembly import registry_queries
from orchestrator.broker.routing import CPU_QUEUE
from orchestrator.pipelines.declarations import queue_of
from svc_parser.model import sample_pdf
from tests.tracking.rows import wait_statuses

SAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "samples"
RESUME = ["Kim Minji — Backend Engineer.", "Built a Celery pipeline with retries; tracked every task in PostgreSQL."]


def assert_tracked(stack, submitted, timeout: float = 60) -> None:
    rows = wait_statuses(
        stack.settings.tracking_database_url, submitted.task_ids, ["SUCCESS"] * len(submitted.task_ids), timeout
    )
    for index, (row, name) in enumerate(zip(rows, submitted.stages)):
        assert (row["task_name"], row["stage_index"], row["chain_total"]) == (name, index, len(rows))
        assert row["pipeline_id"] == submitted.pipeline_id and row["pipeline"] == submitted.name
        assert row["root_task_id"] == submitted.task_ids[0]
        assert row["parent_task_id"] == (submitted.task_ids[index - 1] if index else None)
        queue = queue_of(name)
        assert row["queue"] == queue and row["worker"] == ("cpu@test" if queue == CPU_QUEUE else "gpu@test")
        assert row["created_at"] <= row["started_at"] <= row["completed_at"] and row["runtime"] >= 0
        assert row["result"] is not None and row["error_message"] is None
    status = registry_queries(stack.settings).pipeline_status(submitted.pipeline_id)
    assert status.overall_state == "SUCCESS" and status.progress == 100.0
    assert [t.task_id for t in status.tasks] == submitted.task_ids and all(t.ready for t in status.tasks)


@pytest.fixture(scope="module")
def tracked_resume(stack):
    submitted = stack.submit("resume", {"pdf": stack.put_blob(sample_pdf(RESUME)), "filename": "cv.pdf"})
    stack.wait(submitted)
    return submitted


def test_resume_pipeline_is_tracked(stack, tracked_resume):
    assert_tracked(stack, tracked_resume)


def test_document_ai_and_preload_pipelines_are_tracked(stack):
    runs = [
        stack.submit(
            "document",
            {
                "document": stack.put_blob(b"Tracking notes.\n\nEvery task lands in PostgreSQL."),
                "filename": "notes.txt",
                "content_type": "text/plain",
            },
        ),
        stack.submit(
            "ai_pipeline",
            {
                "text": "Celery chains four stages; each is recorded.",
                "options": {"task": "keywords", "max_new_tokens": 16},
            },
        ),
        stack.submit("llm_preload", {}),
    ]
    for submitted in runs:
        stack.wait(submitted, timeout=240)
    for submitted in runs:
        assert_tracked(stack, submitted)


def test_interview_answer_pipeline_is_tracked(stack, tracked_resume):
    submitted = stack.submit(
        "interview_answer",
        {
            "audio": stack.put_blob((SAMPLES / "answer.wav").read_bytes()),
            "resume_id": tracked_resume.pipeline_id,
            "question": "Tell me about a pipeline you built.",
        },
    )
    stack.wait(submitted, timeout=300)
    assert_tracked(stack, submitted)
