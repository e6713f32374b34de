"""PostgreSQL applies the same merge as merge.py: any split into batches, any
order, any replay gives the row the Python fold gives (real PostgreSQL)."""

from __future__ import annotations

import random
import uuid

from sqlalchemy import text

from orchestrator.storage.db.engine import engine_for
from orchestrator.tracking.recording.merge import COLUMNS, fold
from orchestrator.tracking.recording.writer import write_records
from orchestrator.tracking.states import FAILURE, PENDING, RETRY, SKIPPED, STARTED, SUCCESS, rank
from tests.tracking.rows import rows_of

T0 = 1_700_000_000.0


def history(task_id: str, rng: random.Random) -> list[dict]:
    """A plausible event history of one task: retries, then an outcome (every
    event after the publish names its worker, as events.py's do)."""

    def ev(status, attempt, at, **fields):
        return {
            "kind": "task",
            "task_id": task_id,
            "task_name": "tasks.x",
            "status": status,
            "rank": rank(status, attempt),
            "at": T0 + at,
            **fields,
        }

    events = [
        ev(
            PENDING,
            0,
            0,
            args=[task_id[:4]],
            queue="cpu_queue",
            root_task_id=task_id,
            stage_index=0,
            pipeline_id="p",
            pipeline="resume",
            chain_total=1,
        )
    ]
    retries = rng.randint(0, 3)
    at = 1.0
    for attempt in range(retries + 1):
        events.append(
            ev(STARTED, attempt, at, worker=f"w{attempt}", retry_count=attempt, redelivered=rng.random() < 0.2 or None)
        )
        at += 1
        if attempt < retries:
            events.append(
                ev(RETRY, attempt, at, retry_count=attempt + 1, retry_reason=f"try {attempt}", worker=f"w{attempt}")
            )
            events.append(ev(PENDING, attempt + 1, at + 0.01, retry_count=attempt + 1))
            at += 1
    outcome = rng.choice([SUCCESS, FAILURE, FAILURE + "-parent", SKIPPED])
    if outcome == SUCCESS:
        events.append(ev(SUCCESS, retries, at, result={"n": retries}, runtime=0.25, worker=f"w{retries}"))
    elif outcome == FAILURE:
        events.append(
            ev(FAILURE, retries, at, error_type="ValueError", error_message="bad", traceback="tb", worker=f"w{retries}")
        )
    elif outcome == SKIPPED:
        events = [events[0], ev(SKIPPED, 0, at, error_message="not run")]
    else:  # reported by the worker's main process: no attempt known, its own node name
        events.append(
            ev(FAILURE, None, at, error_type="TimeLimitExceeded", error_message="hard limit", worker=f"w{retries}")
        )
    return events


def write_in_batches(url: str, events: list[dict], rng: random.Random) -> None:
    with engine_for(url).begin() as conn:
        while events:
            size = rng.randint(1, 6)
            write_records(conn, events[:size])
            events = events[size:]


def test_sql_merge_equals_python_fold_for_any_order(fresh_db):
    rng = random.Random(11)
    ids = [str(uuid.uuid4()) for _ in range(40)]
    all_events = [e for task_id in ids for e in history(task_id, rng)]
    expected = fold(all_events)
    shuffled = all_events + rng.sample(all_events, 30)  # replays too
    rng.shuffle(shuffled)
    write_in_batches(fresh_db, shuffled, rng)
    for row in rows_of(fresh_db, ids):
        want = expected[row["task_id"]]
        assert {c: row[c] for c in COLUMNS} == {c: want[c] for c in COLUMNS}, row["task_id"]


def test_replaying_a_written_batch_changes_nothing(fresh_db):
    rng = random.Random(3)
    ids = [str(uuid.uuid4()) for _ in range(10)]
    events = [e for task_id in ids for e in history(task_id, rng)]
    write_in_batches(fresh_db, list(events), rng)
    before = rows_of(fresh_db, ids)
    write_in_batches(fresh_db, list(events), rng)
    after = rows_of(fresh_db, ids)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "updated_at"} for r in rows]  # noqa: E731
    assert strip(after) == strip(before)
    with engine_for(fresh_db).connect() as conn:
        assert conn.execute(
            text("SELECT count(*) FROM task_info WHERE task_id = ANY(:ids)"), {"ids": ids}
        ).scalar() == len(ids)


def test_pipeline_rows_are_written_once(fresh_db):
    pipeline_id = str(uuid.uuid4())
    record = {
        "kind": "pipeline",
        "pipeline_id": pipeline_id,
        "pipeline": "resume",
        "request_id": "r",
        "root_task_id": "a",
        "stage_count": 2,
        "at": T0,
        "stages": [
            {"stage_index": 0, "task_name": "x", "task_id": "a"},
            {"stage_index": 1, "task_name": "y", "task_id": "b"},
        ],
    }
    with engine_for(fresh_db).begin() as conn:
        write_records(conn, [record, dict(record, at=T0 + 5)])
        write_records(conn, [record])
    with engine_for(fresh_db).connect() as conn:
        rows = conn.execute(
            text("SELECT stages, stage_count FROM pipeline_info WHERE pipeline_id = :id"), {"id": pipeline_id}
        ).all()
    assert len(rows) == 1 and rows[0].stage_count == 2 and [s["task_id"] for s in rows[0].stages] == ["a", "b"]


def test_nul_characters_are_stored_as_replacement_characters(fresh_db):
    """PostgreSQL text/jsonb cannot hold NUL: a task whose input has one is still recorded."""
    task_id = str(uuid.uuid4())
    events = [
        {
            "kind": "task",
            "task_id": task_id,
            "task_name": "tasks.x",
            "status": PENDING,
            "rank": rank(PENDING, 0),
            "at": T0,
            "args": [{"text": "a\x00b", "k\x00": ["\x00"]}],
            "kwargs": {},
        },
        {
            "kind": "task",
            "task_id": task_id,
            "task_name": "tasks.x",
            "status": FAILURE,
            "rank": rank(FAILURE, 0),
            "at": T0 + 1,
            "error_type": "ValueError",
            "error_message": "bad \x00 byte",
            "traceback": "tb\x00",
            "result": None,
            "worker": "w",
        },
    ]
    with engine_for(fresh_db).begin() as conn:
        write_records(conn, events)
    row = rows_of(fresh_db, [task_id])[0]
    assert row["args"] == [{"text": "a\ufffdb", "k\ufffd": ["\ufffd"]}]
    assert (row["status"], row["error_message"], row["traceback"]) == (FAILURE, "bad \ufffd byte", "tb\ufffd")


def _pipeline(pipeline_id: str, task_ids: list[str]) -> list[dict]:
    """The publish of a pipeline: its row and a PENDING per stage."""
    stages = [{"stage_index": i, "task_name": f"s{i}", "task_id": t} for i, t in enumerate(task_ids)]
    record = {
        "kind": "pipeline",
        "pipeline_id": pipeline_id,
        "pipeline": "resume",
        "request_id": "r",
        "root_task_id": task_ids[0],
        "stage_count": len(task_ids),
        "at": T0,
        "stages": stages,
    }
    pending = [
        {
            "kind": "task",
            "task_id": t,
            "task_name": f"s{i}",
            "status": PENDING,
            "rank": 0,
            "at": T0,
            "stage_index": i,
            "pipeline_id": pipeline_id,
            "pipeline": "resume",
            "chain_total": len(task_ids),
        }
        for i, t in enumerate(task_ids)
    ]
    return [record, *pending]


def _outcome(task_id: str, status: str, at: float, **fields) -> dict:
    """A worker's event without its pipeline place: the writer finds it through the task's row."""
    return {
        "kind": "task",
        "task_id": task_id,
        "task_name": "s",
        "status": status,
        "rank": rank(status, 0),
        "at": T0 + at,
        **fields,
    }


def _state(url: str, pipeline_id: str) -> dict:
    with engine_for(url).connect() as conn:
        return dict(
            conn.execute(
                text(
                    "SELECT overall_state, completed_steps, finished_at, stage_states FROM pipeline_info "
                    "WHERE pipeline_id = :id"
                ),
                {"id": pipeline_id},
            )
            .mappings()
            .one()
        )


def _write(url: str, records: list[dict]) -> None:
    with engine_for(url).begin() as conn:
        write_records(conn, records)


def test_each_batch_materialises_the_state_of_the_pipelines_it_touched(fresh_db):
    pipeline_id, ids = str(uuid.uuid4()), [str(uuid.uuid4()) for _ in range(3)]
    _write(fresh_db, _pipeline(pipeline_id, ids))
    state = _state(fresh_db, pipeline_id)
    assert (state["overall_state"], state["completed_steps"], state["finished_at"]) == (PENDING, 0, None)
    assert [s["status"] for s in state["stage_states"]] == [PENDING] * 3
    _write(fresh_db, [_outcome(ids[0], STARTED, 1, worker="w"), _outcome(ids[0], SUCCESS, 2, result={"n": 1})])
    state = _state(fresh_db, pipeline_id)
    assert (state["overall_state"], state["completed_steps"]) == ("PROGRESS", 1)
    assert state["stage_states"][0]["summary"] == '{"n": 1}' and state["stage_states"][0]["worker"] == "w"
    _write(fresh_db, [_outcome(ids[1], FAILURE, 3, error_message="ServiceCallError: bad PDF", error_type="E")])
    state = _state(fresh_db, pipeline_id)
    assert (state["overall_state"], state["completed_steps"]) == (FAILURE, 1)
    assert [s["status"] for s in state["stage_states"]] == [SUCCESS, FAILURE, PENDING]  # SKIPPED is a view
    assert state["finished_at"].timestamp() == T0 + 3  # ended: what follows a failure never runs
    _write(fresh_db, [_outcome(ids[2], SKIPPED, 3.1, error_message="not run: an earlier stage failed")])
    assert _state(fresh_db, pipeline_id)["finished_at"].timestamp() == T0 + 3.1


def test_materialised_state_is_the_same_for_any_batching_and_order(fresh_db):
    rng = random.Random(5)
    outcomes = lambda ids: [  # noqa: E731
        _outcome(ids[0], STARTED, 1),
        _outcome(ids[0], SUCCESS, 2, result="a"),
        _outcome(ids[1], STARTED, 3),
        _outcome(ids[1], RETRY, 4, retry_count=1, retry_reason="busy"),
        {**_outcome(ids[1], STARTED, 5), "rank": rank(STARTED, 1), "retry_count": 1},
        {**_outcome(ids[1], SUCCESS, 6, result="b"), "rank": rank(SUCCESS, 1)},
    ]
    reference_id, reference_ids = str(uuid.uuid4()), [str(uuid.uuid4()) for _ in range(3)]
    _write(fresh_db, _pipeline(reference_id, reference_ids) + outcomes(reference_ids))
    want = _state(fresh_db, reference_id)
    for _ in range(5):
        pipeline_id, ids = str(uuid.uuid4()), [str(uuid.uuid4()) for _ in range(3)]
        events = _pipeline(pipeline_id, ids)
        later = outcomes(ids) + rng.sample(outcomes(ids), 3)  # replays too
        rng.shuffle(later)
        write_in_batches(fresh_db, events + later, rng)
        got = _state(fresh_db, pipeline_id)
        assert (got["overall_state"], got["completed_steps"]) == (want["overall_state"], want["completed_steps"])
        strip = lambda states: [  # noqa: E731
            {k: v for k, v in s.items() if k not in ("task_id", "created")} for s in states
        ]
        assert strip(got["stage_states"]) == strip(want["stage_states"])


def test_concurrent_writers_of_one_pipeline_leave_its_full_state(fresh_db):
    """Two drainers commit different stages of one pipeline at once: the later commit
    re-reads under the pipeline's row lock, so neither stage's outcome is missing."""
    import threading

    for _ in range(5):
        pipeline_id, ids = str(uuid.uuid4()), [str(uuid.uuid4()) for _ in range(2)]
        _write(fresh_db, _pipeline(pipeline_id, ids))
        barrier = threading.Barrier(2)

        def drain(task_id: str, at: float, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            _write(fresh_db, [_outcome(task_id, SUCCESS, at, result=task_id[:4])])

        threads = [threading.Thread(target=drain, args=(t, i + 1)) for i, t in enumerate(ids)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        state = _state(fresh_db, pipeline_id)
        assert (state["overall_state"], state["completed_steps"]) == (SUCCESS, 2), state
