"""The gateway's tracking queries on rows written the way the drainer writes
them (real PostgreSQL, real Redis for live hashes and queue depth)."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from orchestrator.assembly import registry_queries
from orchestrator.pipelines.progress import write_pipeline_progress
from orchestrator.settings import OrchestratorSettings
from orchestrator.storage.db.engine import engine_for
from orchestrator.tracking.reading.queries import TrackingQueries
from orchestrator.tracking.recording import events
from orchestrator.tracking.recording.tracker import Tracker
from orchestrator.tracking.recording.writer import write_records
from orchestrator.tracking.retention import cleanup_tracked_rows
from orchestrator.tracking.states import FAILURE, PENDING, RETRY, STARTED, SUCCESS, rank
from tests.tracking.rows import rows_of

NOW = time.time()


def rec(task_id: str, name: str, status: str, at: float, attempt: int = 0, **fields) -> dict:
    return {
        "kind": "task",
        "task_id": task_id,
        "task_name": name,
        "status": status,
        "rank": rank(status, attempt),
        "at": at,
        **fields,
    }


def write(url: str, records: list[dict]) -> None:
    with engine_for(url).begin() as conn:
        write_records(conn, records)


def pipeline_records(
    name: str, statuses: list[str], at: float, runtimes: list[float] | None = None, stage_names: list[str] | None = None
) -> tuple[str, list[str], list[dict]]:
    """A pipeline's rows: PENDING at `at` for every stage, then each stage's status."""
    pipeline_id, ids = str(uuid.uuid4()), [str(uuid.uuid4()) for _ in statuses]
    names = stage_names or [f"{name}.stage{i}" for i in range(len(statuses))]

    def place(i: int) -> dict:
        return {
            "pipeline_id": pipeline_id,
            "pipeline": name,
            "stage_index": i,
            "chain_total": len(ids),
            "root_task_id": ids[0],
            "parent_task_id": ids[i - 1] if i else None,
        }

    records: list[dict] = [
        {
            "kind": "pipeline",
            "pipeline_id": pipeline_id,
            "pipeline": name,
            "request_id": pipeline_id,
            "root_task_id": ids[0],
            "stage_count": len(ids),
            "at": at,
            "stages": [{"stage_index": i, "task_name": n, "task_id": t} for i, (n, t) in enumerate(zip(names, ids))],
        }
    ]
    for i, (task_id, status) in enumerate(zip(ids, statuses)):
        records.append(rec(task_id, names[i], PENDING, at, **place(i)))
        if status != PENDING:
            records.append(rec(task_id, names[i], STARTED, at + 1 + i, worker="w"))
        if status in (SUCCESS, FAILURE):
            runtime = (runtimes or [0.5] * len(ids))[i]
            records.append(
                rec(
                    task_id,
                    names[i],
                    status,
                    at + 1 + i + runtime,
                    worker="w",
                    runtime=runtime,
                    result={"stage": i} if status == SUCCESS else None,
                    error_type="ServiceCallError" if status == FAILURE else None,
                    error_message="ServiceCallError: bad PDF" if status == FAILURE else None,
                )
            )
    return pipeline_id, ids, records


@pytest.fixture
def queries(tracking_settings: OrchestratorSettings) -> TrackingQueries:
    return registry_queries(tracking_settings)


def test_history_is_newest_first_with_stable_cursor_pages_and_filters(queries, fresh_db):
    name_a, name_b = f"h.{uuid.uuid4().hex[:6]}.a", f"h.{uuid.uuid4().hex[:6]}.b"
    ids = [str(uuid.uuid4()) for _ in range(25)]
    write(
        fresh_db,
        [
            rec(
                t,
                name_a if i % 2 else name_b,
                FAILURE if i % 5 == 0 else SUCCESS,
                NOW - 60 * i,
                attempt=None if i % 5 == 0 else 0,
                pipeline=f"p-{name_a}",
            )
            for i, t in enumerate(ids)
        ],
    )
    write(fresh_db, [rec(str(uuid.uuid4()), name_a, SUCCESS, NOW - 3 * 86400)])  # outside 24 h
    pages, cursor = [], None
    while True:
        page = queries.history(hours=24, pipeline=f"p-{name_a}", limit=10, cursor=cursor)
        pages.append([item.task_id for item in page.items])
        cursor = page.next_cursor
        if cursor is None:
            break
    assert [len(p) for p in pages] == [10, 10, 5]
    assert [t for p in pages for t in p] == ids  # newest first, nothing twice, nothing missed
    failures = queries.history(hours=24, status=FAILURE, task_name=name_b, limit=100).items
    assert [f.task_id for f in failures] == [ids[i] for i in range(0, 25, 5) if i % 2 == 0]
    assert len(queries.history(hours=24 * 7, task_name=name_a, limit=100).items) == 13
    assert queries.task(ids[3]).task_name == name_a and queries.task("nope") is None
    with pytest.raises(ValueError):
        queries.history(cursor="garbage")


def test_metrics_over_a_window(queries, fresh_db, rclient):
    before = queries.metrics(24)
    name = f"m.{uuid.uuid4().hex[:6]}"
    error = f"Err{uuid.uuid4().hex[:6]}"
    records = []
    for i, runtime in enumerate([1.0, 2.0, 3.0, 4.0, 10.0]):
        status = FAILURE if runtime == 10.0 else SUCCESS
        task_id = str(uuid.uuid4())
        records += [
            rec(task_id, name, STARTED, NOW - 100, attempt=i % 2, retry_count=i % 2),
            rec(
                task_id,
                name,
                status,
                NOW - 90,
                attempt=i % 2,
                runtime=runtime,
                error_type=error if status == FAILURE else None,
            ),
        ]
    records.append(rec(str(uuid.uuid4()), name, RETRY, NOW - 80, retry_count=1))
    write(fresh_db, records)
    _, _, done = pipeline_records(f"c.{name}", [SUCCESS, SUCCESS], NOW - 50)
    _, _, broken = pipeline_records(f"c.{name}", [SUCCESS, FAILURE, PENDING], NOW - 50)
    _, _, running = pipeline_records(f"c.{name}", [SUCCESS, STARTED], NOW - 50)
    write(fresh_db, done + broken + running)
    queue = f"tq_{uuid.uuid4().hex[:6]}"
    rclient.lpush(queue, "a", "b")
    oldest = json.dumps({"headers": {"published_at": time.time() - 30}})  # kombu's message, as the exporter reads it
    rclient.lpush(f"{queue}:4", oldest, "d", "e")  # kombu's priority sub-queue (sep ":"); the oldest is last
    try:
        on_queue = TrackingQueries(queries.settings, queries.pipelines, (queue,), queries.transport_options)
        after = on_queue.metrics(24)
    finally:
        rclient.delete(queue, f"{queue}:4")
    [mine] = [m for m in after.by_task if m.task_name == name]
    assert (mine.total, mine.succeeded, mine.failed) == (6, 4, 1)
    assert mine.success_rate == 0.8 and mine.mean_seconds == 4.0 and mine.p95_seconds == pytest.approx(8.8)
    assert mine.retries == 3  # 1 + 1 from the second and fourth tasks, 1 from the retrying one
    assert after.errors_by_type[error] == 1
    chains = after.chains
    assert (
        chains.total - before.chains.total,
        chains.completed - before.chains.completed,
        chains.failed - before.chains.failed,
        chains.running - before.chains.running,
    ) == (3, 1, 1, 1)
    assert after.queue_depth == {queue: 5} and after.unacked >= 0
    assert 30 <= after.queue_oldest_seconds[queue] < 60
    [pipeline] = [p for p in after.by_pipeline if p.pipeline == f"c.{name}"]
    assert (pipeline.total, pipeline.completed, pipeline.failed, pipeline.success_rate) == (3, 1, 1, 0.5)
    assert pipeline.mean_seconds == pytest.approx(2.5) and pipeline.p95_seconds == pytest.approx(2.5)
    assert after.total_tasks - before.total_tasks == 6 + 7


def test_pipeline_status_with_live_overlay_progress_and_skips(queries, fresh_db, rclient, tracking_settings):
    pipeline_id, ids, records = pipeline_records("resume", [SUCCESS, STARTED, PENDING], NOW - 10)
    write(fresh_db, records)
    status = queries.pipeline_status(pipeline_id)
    assert status.overall_state == "PROGRESS" and [t.status for t in status.tasks] == [SUCCESS, STARTED, PENDING]
    assert status.tasks[0].result == '{"stage": 0}' and status.progress == pytest.approx(33.3)
    # The stage reported progress (the pipeline's live hash):
    write_pipeline_progress(
        rclient,
        pipeline_id,
        60,
        status="PROGRESS",
        stage="stage1",
        stage_index=1,
        stage_count=3,
        progress=50,
        overall_progress=50.0,
        message="embedding",
        task_id=ids[1],
    )
    status = queries.pipeline_status(pipeline_id)
    assert status.tasks[1].status == "PROGRESS" and '"progress": 50.0' in status.tasks[1].result
    assert status.progress == 50.0 and status.message == "embedding"
    # A newer state only the live hash knows yet (the outbox has not drained):
    tracker = Tracker(tracking_settings)
    failure = events.task_record(ids[1], "resume.stage1", FAILURE, 0, worker="w", error_type="X")
    tracker.emit([{**failure, "pipeline_id": pipeline_id, "stage_index": 1}])  # as a worker's record names them
    status = queries.pipeline_status(pipeline_id)
    assert [t.status for t in status.tasks] == [SUCCESS, FAILURE, "SKIPPED"] and status.overall_state == FAILURE
    assert status.tasks[2].ready and status.tasks[2].result.startswith("not run")
    assert rows_of(fresh_db, [ids[1]])[0]["status"] == STARTED  # PostgreSQL has not been told yet


def test_pipeline_status_before_the_outbox_drained_and_unknown_ids(queries, tracking_settings):
    tracker = Tracker(tracking_settings)
    headers = {
        "id": "t0",
        "task": "tasks.resume_pipeline.parse_pdf",
        "retries": 0,
        "root_id": None,
        "parent_id": None,
        "pipeline_id": str(uuid.uuid4()),
        "pipeline": "resume",
        "stage_index": 0,
        "stage_count": 2,
    }
    headers["id"] = str(uuid.uuid4())
    link = {
        "task": "tasks.resume_pipeline.generate_embeddings",
        "options": {"task_id": str(uuid.uuid4()), "queue": "gpu_queue", "headers": {**headers, "stage_index": 1}},
    }
    tracker.emit(events.published(headers, ([{"pdf": "blob:x"}], {}, {"chain": [link]}), "cpu_queue", tracker.masker))
    status = queries.pipeline_status(headers["pipeline_id"])
    assert status.source == "live" and status.overall_state == PENDING and status.total_steps == 2
    assert [t.task_id for t in status.tasks] == [headers["id"], link["options"]["task_id"]]
    assert queries.pipeline_status(str(uuid.uuid4())) is None


def test_recent_pipelines_and_stage_means(queries, fresh_db):
    stages = [
        "tasks.resume_pipeline.parse_pdf",
        "tasks.resume_pipeline.generate_embeddings",
        "tasks.resume_pipeline.store_chunks",
    ]
    assert queries.estimated_seconds("resume") == 10.0  # no history yet: the declared default
    newest = None
    for i, runtimes in enumerate(([1.0, 2.0, 0.5], [3.0, 4.0, 1.5])):
        newest, _, records = pipeline_records("resume", [SUCCESS] * 3, NOW + 60 + i, runtimes, stages)
        write(fresh_db, records)
    assert queries.mean_stage_seconds("resume") == dict(zip(stages, [2.0, 3.0, 1.0]))
    assert queries.estimated_seconds("resume") == 6.0
    recent = queries.recent_pipelines(1)
    assert [(p.pipeline_id, p.overall_state, p.completed_steps) for p in recent] == [(newest, SUCCESS, 3)]
    assert recent[0].completed_at is not None


def test_retention_removes_old_rows_only(fresh_db, tracking_settings):
    old_id, old_ids, old = pipeline_records("resume", [SUCCESS], NOW - 40 * 86400)
    new_id, new_ids, new = pipeline_records("resume", [SUCCESS], NOW - 3600)
    write(fresh_db, old + new)
    removed = cleanup_tracked_rows(tracking_settings.model_copy(update={"task_retention_days": 30}))
    assert removed >= 2
    assert rows_of(fresh_db, old_ids) == [] and len(rows_of(fresh_db, new_ids)) == 1


def test_cleanup_hook_is_registered_with_beats_cleanup(tracking_settings):
    from orchestrator.assembly import tracked_app
    from orchestrator.pipelines.tasks.maintenance import CLEANUP_HOOKS

    app = tracked_app(tracking_settings)
    assert CLEANUP_HOOKS["tracked_rows"] is cleanup_tracked_rows
    assert app.conf.beat_schedule["tasks.maintenance.cleanup"]["task"] == "tasks.maintenance.cleanup"
