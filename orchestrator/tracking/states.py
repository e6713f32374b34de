"""Task states, their precedence, and a pipeline's overall state.

Every tracking event carries a rank, and a task's stored status is the one of
its highest-ranked event (ties broken by the event's time). The rank orders an
attempt's phases and lets a later attempt win over an earlier one, so events
can be applied in any order, any number of times, with the same result:

    PENDING (any attempt)          0      a (re)publish never outranks anything
    STARTED of attempt n           10n+1  a retried task starts again: RETRY → STARTED
    RETRY / REJECTED of attempt n  10n+2
    terminal of attempt n          10n+5  a late STARTED never overwrites SUCCESS
    terminal seen outside the run  FINAL  hard time limit / revoke (the parent process
                                          does not know the attempt; nothing follows)
"""

from __future__ import annotations

from collections.abc import Iterable

PENDING = "PENDING"
STARTED = "STARTED"
PROGRESS = "PROGRESS"  # a running stage that reported progress (view only, from the live hash)
RETRY = "RETRY"
SUCCESS = "SUCCESS"
FAILURE = "FAILURE"
REVOKED = "REVOKED"
REJECTED = "REJECTED"
IGNORED = "IGNORED"
SKIPPED = "SKIPPED"  # a chain link after a failed/revoked stage: it never ran

# Every status a task row can hold (history filters accept exactly these).
RECORDED = (PENDING, STARTED, RETRY, REJECTED, SUCCESS, FAILURE, REVOKED, IGNORED, SKIPPED)
TERMINAL = frozenset({SUCCESS, FAILURE, REVOKED, IGNORED, SKIPPED})
RUNNING = frozenset({STARTED, PROGRESS, RETRY, REJECTED})
# A pipeline's overall state (what overall_state returns), and those it ends in.
PIPELINE_STATES = (PENDING, PROGRESS, SUCCESS, FAILURE, REVOKED)
PIPELINE_TERMINAL = frozenset({SUCCESS, FAILURE, REVOKED})
_PHASE = {PENDING: 0, STARTED: 1, RETRY: 2, REJECTED: 2, SUCCESS: 5, FAILURE: 5, REVOKED: 5, IGNORED: 5, SKIPPED: 5}
FINAL_ATTEMPT = 1_000_000


def rank(status: str, attempt: int | None) -> int:
    """Precedence of an event; `attempt` None = a terminal seen from outside the run."""
    phase = _PHASE[status]
    if phase == 0:
        return 0
    if attempt is None:
        attempt = FINAL_ATTEMPT
    return attempt * 10 + phase


def wins(new_rank: int, new_at: float, old_rank: int | None, old_at: float | None) -> bool:
    """Whether an event (rank, time) takes precedence over the stored one (ties: the same event, replayed)."""
    if old_rank is None:
        return True
    return (new_rank, new_at) >= (old_rank, old_at or 0.0)


def is_ready(status: str) -> bool:
    return status in TERMINAL


def overall_state(statuses: Iterable[str]) -> str:
    """The monitoring rule (docs/decisions/0011-task-status-shapes.md): all SUCCESS →
    SUCCESS; any FAILURE → FAILURE; any STARTED/PROGRESS/RETRY → PROGRESS; else PENDING.
    Extended with: any REVOKED → REVOKED (after FAILURE), and a pipeline between stages
    (some SUCCESS, the rest PENDING) is PROGRESS, not PENDING."""
    states = list(statuses)
    if not states:
        return PENDING
    if all(s == SUCCESS for s in states):
        return SUCCESS
    if FAILURE in states:
        return FAILURE
    if REVOKED in states:
        return REVOKED
    if any(s in RUNNING for s in states) or SUCCESS in states:
        return PROGRESS
    return PENDING


def skip_after_failure(statuses: list[str]) -> list[str]:
    """Stages after a failed or revoked one that never started are SKIPPED (Celery
    fires no signal for the chain links it drops)."""
    out, broken = [], False
    for status in statuses:
        if broken and status in (PENDING, SKIPPED):
            out.append(SKIPPED)
            continue
        out.append(status)
        if status in (FAILURE, REVOKED):
            broken = True
    return out
