"""State precedence and a pipeline's overall state (pure functions)."""

from __future__ import annotations

import itertools
import random

import pytest

from orchestrator.tracking.recording.merge import fold
from orchestrator.tracking.states import (
    FAILURE,
    PENDING,
    PROGRESS,
    RETRY,
    REVOKED,
    SKIPPED,
    STARTED,
    SUCCESS,
    overall_state,
    rank,
    skip_after_failure,
)

T0 = 1_700_000_000.0


def event(status: str, attempt: int | None, at: float, **fields) -> dict:
    return {
        "kind": "task",
        "task_id": "t1",
        "task_name": "tasks.x",
        "status": status,
        "rank": rank(status, attempt),
        "at": T0 + at,
        **fields,
    }


def final(events: list[dict]) -> dict:
    return fold(events)["t1"]


def test_ranks_order_phases_and_attempts():
    assert rank(PENDING, 0) == rank(PENDING, 5) == 0  # a republish never outranks anything
    assert rank(STARTED, 0) < rank(RETRY, 0) < rank(SUCCESS, 0)
    assert rank(RETRY, 0) < rank(STARTED, 1)  # RETRY → STARTED after a retry is legit
    assert rank(SUCCESS, 0) > rank(STARTED, 0)  # a late STARTED never overwrites SUCCESS
    assert rank(FAILURE, None) > rank(SUCCESS, 50)  # a failure seen by the parent process is final


RETRIED_THEN_OK = [
    event(PENDING, 0, 0, args=[1], queue="cpu_queue", root_task_id="t1"),
    event(STARTED, 0, 1, worker="w1", retry_count=0),
    event(RETRY, 0, 2, retry_count=1, retry_reason="UNAVAILABLE: first"),
    event(PENDING, 1, 2.1, retry_count=1),
    event(STARTED, 1, 3, worker="w2", retry_count=1),
    event(RETRY, 1, 4, retry_count=2, retry_reason="UNAVAILABLE: second"),
    event(PENDING, 2, 4.1, retry_count=2),
    event(STARTED, 2, 5, worker="w1", retry_count=2),
    event(SUCCESS, 2, 6, result={"ok": True}, runtime=0.5, worker="w1"),
]


def test_retried_task_ends_in_success_with_its_last_retry_reason():
    row = final(RETRIED_THEN_OK)
    assert row["status"] == SUCCESS and row["retry_count"] == 2 and row["result"] == {"ok": True}
    assert row["retry_reason"] == "UNAVAILABLE: second" and row["worker"] == "w1"
    assert row["args"] == [1] and row["queue"] == "cpu_queue" and row["runtime"] == 0.5
    assert row["created_at"].timestamp() == T0 and row["started_at"].timestamp() == T0 + 5
    assert row["completed_at"].timestamp() == T0 + 6


def test_every_order_and_any_replay_gives_the_same_row():
    expected = final(RETRIED_THEN_OK)
    rng = random.Random(5)
    for _ in range(300):
        shuffled = RETRIED_THEN_OK + rng.sample(RETRIED_THEN_OK, 3)  # some replayed
        rng.shuffle(shuffled)
        assert final(shuffled) == expected


def test_states_in_between_follow_the_attempts():
    assert final(RETRIED_THEN_OK[:3])["status"] == RETRY
    assert final(RETRIED_THEN_OK[:4])["status"] == RETRY  # the retry's republish does not reset it to PENDING
    assert final(RETRIED_THEN_OK[:5])["status"] == STARTED
    late_started = RETRIED_THEN_OK + [event(STARTED, 2, 7, worker="w9")]
    assert final(late_started)["status"] == SUCCESS


@pytest.mark.parametrize(
    "events, status",
    [
        (
            [
                event(PENDING, 0, 0),
                event(STARTED, 0, 1, worker="w1"),
                event(FAILURE, None, 3, error_type="TimeLimitExceeded"),
            ],
            FAILURE,
        ),
        ([event(PENDING, 0, 0), event(STARTED, 0, 1), event(REVOKED, None, 2)], REVOKED),
        ([event(PENDING, 0, 0), event(SKIPPED, 0, 2)], SKIPPED),
    ],
)
def test_terminal_states_win_in_any_order(events, status):
    for order in itertools.permutations(events):
        row = final(list(order))
        assert row["status"] == status
        assert row["worker"] in (None, "w1")
    if status == FAILURE:  # the parent process does not know the worker: the STARTED's is kept
        assert final(events)["worker"] == "w1" and final(events)["error_type"] == "TimeLimitExceeded"


def test_overall_state_by_seed_004_rule():
    assert overall_state([SUCCESS, SUCCESS]) == SUCCESS
    assert overall_state([SUCCESS, FAILURE, PENDING]) == FAILURE
    assert overall_state([SUCCESS, STARTED, PENDING]) == PROGRESS
    assert overall_state([SUCCESS, RETRY]) == PROGRESS
    assert overall_state([PENDING, PENDING]) == PENDING
    assert overall_state([SUCCESS, PENDING]) == PROGRESS  # between stages: running, not pending
    assert overall_state([SUCCESS, REVOKED, SKIPPED]) == REVOKED


def test_stages_after_a_failure_are_skipped():
    assert skip_after_failure([SUCCESS, FAILURE, PENDING, PENDING]) == [SUCCESS, FAILURE, SKIPPED, SKIPPED]
    assert skip_after_failure([REVOKED, PENDING]) == [REVOKED, SKIPPED]
    assert skip_after_failure([SUCCESS, STARTED, PENDING]) == [SUCCESS, STARTED, PENDING]
