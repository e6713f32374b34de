"""Every pipeline end to end: real services on loopback, a real worker per
queue, real Redis and PostgreSQL."""

from __future__ import annotations

import json
import time
from pathlib import Path

import jiwer
import pydantic
import pytest
from sqlalchemy import select

from orchestrator import keys
from orchestrator.broker.routing import QUEUES
from orchestrator.pipelines.declarations import routes
from orchestrator.pipelines.progress import read_pipeline_progress
from orchestrator.storage.db import session_scope
from orchestrator.storage.db.models import Chunk, Document
from svc_parser.model import sample_pdf
from tests.tracking.rows import wait_statuses

SAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "samples"
RESUME_TEXT = [
    "Kim Minji — Backend Engineer. Seoul, Korea.",
    "Experience: built a document pipeline with Celery and Redis processing ten thousand files a day. "
    "Reduced failures by adding retries with exponential backoff. Operated PostgreSQL and gRPC services.",
    "Skills: Python, FastAPI, Kubernetes, PyTorch model serving on GPUs.",
]


def states(results) -> list[str]:
    return [r.state for r in results]


@pytest.fixture(scope="module")
def resume(stack):
    """A resume that went through the resume pipeline (its id = the pipeline id)."""
    pdf = sample_pdf(RESUME_TEXT, title="Kim Minji CV", author="Kim Minji")
    submitted = stack.submit("resume", {"pdf": stack.put_blob(pdf), "filename": "kim-minji.pdf"})
    results = stack.wait(submitted)
    return submitted, results


def test_workers_serve_exactly_the_routing_table(stack):
    inspect = stack.app.control.inspect(timeout=5)
    registered, queues = inspect.registered(), inspect.active_queues()
    for kind, queue in (("cpu", "cpu_queue"), ("gpu", "gpu_queue")):
        hostname = stack.workers[kind].hostname
        assert set(registered[hostname]) == set(routes())
        assert [q["name"] for q in queues[hostname]] == [queue]
        (declared,) = queues[hostname]
        assert declared["exchange"]["name"] == queue and declared["routing_key"] == queue


def test_each_queue_is_the_only_one_bound_to_its_exchange(stack):
    """kombu's binding table per exchange (what any publisher through the exchange
    delivers by) names exactly one queue: its own."""
    broker = stack.app.aiworker.redis
    sep = stack.app.conf.broker_transport_options["sep"]  # routing key, pattern, queue
    for queue in QUEUES:
        bound = [member.decode().split(sep) for member in broker.smembers(keys.binding_table(queue))]
        assert bound == [[queue, "", queue]]


def test_resume_pipeline_stores_text_and_vectors(stack, resume):
    submitted, results = resume
    assert states(results) == ["SUCCESS"] * 3
    final = results[-1].result
    assert final["document_id"] == submitted.pipeline_id
    assert final["chunks"] >= 1 and final["dimension"] == 384 and final["title"] == "Kim Minji CV"
    with session_scope(stack.settings.database_url) as session:
        doc = session.get(Document, submitted.pipeline_id)
        assert doc.kind == "resume" and doc.page_count == 3 and doc.filename == "kim-minji.pdf"
        rows = session.execute(select(Chunk).where(Chunk.document_id == doc.id).order_by(Chunk.index)).scalars().all()
        text = " ".join(r.text for r in rows)
        assert "ten thousand files a day" in text and "PyTorch model serving" in text
        assert all(len(r.embedding) == 384 for r in rows)
    progress = read_pipeline_progress(stack.app.aiworker.redis, submitted.pipeline_id)
    assert progress["status"] == "SUCCESS" and progress["stage"] == "store_chunks"
    assert progress["progress"] == "100" and float(progress["overall_progress"]) == 100.0
    assert 0 < stack.app.aiworker.redis.ttl(f"aiworker:pipeline:{submitted.pipeline_id}") <= 3600
    # The ids travelled in gRPC metadata: the parser's log line of that call carries them.
    parser_log = stack.services["parser"].process.log_path.read_text().splitlines()
    call = next(line for line in parser_log if submitted.pipeline_id in line and '"rpc_finished"' in line)
    assert submitted.task_ids[0] in call and "ParsePdf" in call


def test_interview_answer_pipeline(stack, resume):
    audio = (SAMPLES / "answer.wav").read_bytes()
    spoken = (SAMPLES / "answer.txt").read_text().strip()
    submitted = stack.submit(
        "interview_answer",
        {
            "audio": stack.put_blob(audio),
            "resume_id": resume[0].pipeline_id,
            "question": "Tell me about a pipeline you built.",
        },
    )
    results = stack.wait(submitted, timeout=240)
    assert states(results) == ["SUCCESS"] * 3, [r.result for r in results]
    transcript = results[0].result["transcript"]
    normalize = jiwer.Compose(
        [
            jiwer.ToLowerCase(),
            jiwer.RemovePunctuation(),
            jiwer.RemoveMultipleSpaces(),
            jiwer.Strip(),
            jiwer.ReduceToListOfListOfWords(),
        ]
    )
    assert jiwer.wer(spoken, transcript, reference_transform=normalize, hypothesis_transform=normalize) <= 0.35
    evaluation = results[1].result["evaluation"]
    assert evaluation["feedback"] and evaluation["feedback_source"] in ("llm", "signals")
    assert 1 <= evaluation["score"] <= 10 and evaluation["breakdown"]["signals"]["relevance"] is not None
    assert evaluation["resume_id"] == resume[0].pipeline_id
    # The answer talks about the resume's Celery/Redis pipeline: that chunk is the closest.
    assert "Celery" in evaluation["relevant_chunks"][0]["text"]
    assert evaluation["similarity_max"] > 0.3
    question = results[2].result["follow_up_question"]
    assert question.endswith("?") and len(question.split()) >= 3


def test_interview_answer_without_resume(stack):
    submitted = stack.submit("interview_answer", {"audio": stack.put_blob((SAMPLES / "answer.wav").read_bytes())})
    results = stack.wait(submitted, timeout=240)
    assert states(results) == ["SUCCESS"] * 3
    assert results[1].result["evaluation"]["similarity_max"] is None


def test_document_pipeline_pdf_and_text(stack):
    pdf = stack.submit(
        "document",
        {
            "document": stack.put_blob(
                sample_pdf(["Quarterly report. Revenue grew 12 percent.", "Risks: GPU supply."])
            ),
            "filename": "report.pdf",
        },
    )
    text = stack.submit(
        "document",
        {
            "document": stack.put_blob("사내 문서 처리 파이프라인 안내. Celery로 처리합니다.".encode()),
            "filename": "guide.txt",
            "content_type": "text/plain",
        },
    )
    for submitted, needle in ((pdf, "Revenue grew 12 percent"), (text, "사내 문서 처리")):
        results = stack.wait(submitted)
        assert states(results) == ["SUCCESS"] * 4
        with session_scope(stack.settings.database_url) as session:
            chunks = (
                session.execute(select(Chunk.text).where(Chunk.document_id == submitted.pipeline_id)).scalars().all()
            )
        assert needle in " ".join(chunks)


def test_ai_pipeline_real_work_with_seed_shapes(stack):
    text = "  Celery  chains four stages.\x00 Each stage reports progress to Redis.\n\n\n\nThe result is stored.  "
    submitted = stack.submit("ai_pipeline", {"text": text, "options": {"task": "summarize"}})
    results = stack.wait(submitted, timeout=240)
    assert states(results) == ["SUCCESS"] * 4
    s1, s2, s3, s4 = (r.result for r in results)
    assert [s["result"] for s in (s1, s2, s3, s4)] == [
        "stage1_completed",
        "stage2_completed",
        "stage3_completed",
        "pipeline_completed",
    ]
    assert {s["chain_id"] for s in (s1, s2, s3, s4)} == {submitted.pipeline_id}
    assert (
        s1["data"]["text"]
        == "Celery chains four stages. Each stage reports progress to Redis.\n\nThe result is stored."
    )
    assert s2["stage1_data"] == s1 and s2["features"]["dimension"] == 384
    assert s3["stage2_data"] == s2 and s3["inference"]["text"]
    assert s4["stage3_data"] == s3 and s4["output"]["answer"] == s3["inference"]["text"]


def test_llm_preload_pipeline(stack):
    results = stack.wait(stack.submit("llm_preload", {}))
    assert states(results) == ["SUCCESS"]
    assert results[0].result["model"]


def test_corrupt_pdf_fails_fast_at_parse_without_retries(stack):
    submitted = stack.submit("resume", {"pdf": stack.put_blob(b"%PDF-1.7\nnot really a pdf\n%%EOF\n")})
    results = stack.wait(submitted)
    assert results[0].state == "FAILURE"
    assert "INVALID_ARGUMENT" in str(results[0].result) and "corrupt PDF" in str(results[0].result)
    assert results[0].retries == 0
    progress = read_pipeline_progress(stack.app.aiworker.redis, submitted.pipeline_id)
    assert progress["status"] == "FAILURE" and progress["stage"] == "parse_pdf"


def blob_files(stack) -> set[str]:
    return {p.name for p in stack.blob_dir.rglob("*") if p.is_file()}


def test_whitespace_only_text_document_fails_fast_at_parse_with_a_clear_message(stack):
    document = stack.put_blob(" \n\t  \u3000\r\n\u200b \n\n   ".encode())
    blobs_before = blob_files(stack)
    submitted = stack.submit("document", {"document": document, "filename": "blank.txt", "content_type": "text/plain"})
    results = stack.wait(submitted)
    assert results[0].state == "FAILURE", states(results)
    error = results[0].result
    assert type(error).__name__ == "InvalidInput" and "no text" in str(error), repr(error)
    assert results[0].retries == 0
    progress = read_pipeline_progress(stack.app.aiworker.redis, submitted.pipeline_id)
    assert progress["status"] == "FAILURE" and progress["stage"] == "parse" and "no text" in progress["message"]
    rows = wait_statuses(
        stack.settings.tracking_database_url,
        submitted.task_ids,
        ["FAILURE", "SKIPPED", "SKIPPED", "SKIPPED"],
        timeout=30,
    )
    assert rows[0]["error_type"] == "InvalidInput" and rows[0]["retry_count"] == 0
    assert blob_files(stack) == blobs_before  # nothing stored for a document with nothing in it


def test_every_document_stage_reports_progress_as_its_celery_state(stack):
    """Each stage's PROGRESS state as the backend stores it (Celery's Redis backend
    publishes every state it writes on the task's key: a subscriber sees them all,
    however short the stage)."""
    pubsub = stack.app.aiworker.redis.pubsub(ignore_subscribe_messages=True)
    pubsub.psubscribe("celery-task-meta-*")
    try:
        submitted = stack.submit(
            "document",
            {
                "document": stack.put_blob(b"Progress report. Every stage says what it does. Even the quick ones."),
                "filename": "progress.txt",
                "content_type": "text/plain",
            },
        )
        results = stack.wait(submitted)
        assert states(results) == ["SUCCESS"] * 4
        seen: dict[str, list[dict]] = {t: [] for t in submitted.task_ids}
        deadline = time.monotonic() + 10  # every state was published already: read until each SUCCESS
        while time.monotonic() < deadline and not all(
            any(m["status"] == "SUCCESS" for m in metas) for metas in seen.values()
        ):
            message = pubsub.get_message(timeout=0.2)  # None also for the subscription's confirmation
            task_id = message and message["channel"].decode().removeprefix("celery-task-meta-")
            if task_id in seen:
                seen[task_id].append(json.loads(message["data"]))
    finally:
        pubsub.close()
    for index, (task_id, name) in enumerate(zip(submitted.task_ids, submitted.stages)):
        progress = [m["result"] for m in seen[task_id] if m["status"] == "PROGRESS"]
        assert progress, f"{name} stored no PROGRESS state: {[m['status'] for m in seen[task_id]]}"
        for meta in progress:
            assert meta["stage"] == name.rsplit(".", 1)[-1] and meta["stage_index"] == index
            assert 0 <= meta["progress"] <= 100 and meta["message"]


def test_a_running_stage_shows_progress_in_its_celery_state(stack):
    """Polled as a client would, while the LLM stage of ai_pipeline runs."""
    submitted = stack.submit(
        "ai_pipeline",
        {
            "text": "Celery runs stages on workers. Each one reports progress. "
            "Clients poll the state while the model writes.",
            "options": {"task": "summarize", "max_new_tokens": 128},
        },
    )
    llm_stage = stack.app.AsyncResult(submitted.task_ids[2])
    observed: list[tuple[str, object]] = []
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        state = llm_stage.state
        if state == "PROGRESS":
            info = llm_stage.info
            if llm_stage.state == "PROGRESS":  # still running: `info` is the PROGRESS meta
                observed.append((state, info))
        elif state in ("SUCCESS", "FAILURE"):
            break
        time.sleep(0.02)
    assert llm_stage.state == "SUCCESS"
    assert observed, "never saw the LLM stage in PROGRESS"
    assert observed[0][1] == {
        "stage": "stage3_model_inference",
        "stage_index": 2,
        "progress": 40,
        "message": "running the model",
    }


def test_bad_payload_is_refused_at_submit(stack):
    with pytest.raises(pydantic.ValidationError):
        stack.submit("ai_pipeline", {"text": ""})
    with pytest.raises(KeyError, match="unknown pipeline"):
        stack.submit("no_such_pipeline", {})


def test_service_down_at_submit_comes_up_and_the_pipeline_completes(stack):
    parser = stack.services["parser"]
    parser.stop()
    try:
        submitted = stack.submit("resume", {"pdf": stack.put_blob(sample_pdf(["Retry me. Celery backoff works."]))})
        time.sleep(3)
    finally:
        parser.restart()
    results = stack.wait(submitted)
    assert states(results) == ["SUCCESS"] * 3
    assert results[0].retries >= 1


def test_beat_runs_the_periodic_cleanup(stack, log_dir, tmp_path):
    """aiworker-beat sends tasks.maintenance.cleanup on its schedule; a worker runs it."""
    from aiworker_local.procs import ManagedProcess
    from aiworker_local.workers import BIN
    from orchestrator.assembly import registry_queries

    env = {**stack.env, "AIWORKER_CLEANUP_INTERVAL_SECONDS": "1"}
    beat = ManagedProcess(
        "beat", [str(BIN / "aiworker-beat"), "--schedule", str(tmp_path / "schedule")], log_dir / "beat.log", env=env
    ).start()
    queries = registry_queries(stack.settings)
    try:
        beat.wait_until(
            lambda: any(
                t.status == "SUCCESS"
                for t in queries.history(hours=1, task_name="tasks.maintenance.cleanup", limit=5).items
            ),
            60,
            "a cleanup task run by a worker",
        )
    finally:
        beat.stop()
    run = next(
        t
        for t in queries.history(hours=1, task_name="tasks.maintenance.cleanup", limit=5).items
        if t.status == "SUCCESS"
    )
    assert {"blobs", "pipeline_hashes_given_ttl", "tracked_rows"} <= set(run.result)
    assert run.queue == "cpu_queue"
