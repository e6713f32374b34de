"""Folding tracking events into task rows. The same rules run here (to collapse
a batch to one row per task) and in PostgreSQL's ON CONFLICT clause (writer.py),
and every rule is order-independent and idempotent: greatest (rank, time) wins
the status and the outcome; least created, greatest started and retry count;
first non-null of the static fields; OR of `redelivered`. So events may arrive
late, twice, or through several drainers at once and the row ends the same."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from orchestrator.tracking.states import PENDING, STARTED, TERMINAL, wins

# Columns an event's winner decides (its values replace the stored ones together).
OUTCOME = (
    "status",
    "status_rank",
    "status_at",
    "result",
    "output",
    "error_type",
    "error_message",
    "traceback",
    "runtime",
    "completed_at",
)
# Columns filled from whichever event knows them (all events agree on these).
STATIC = (
    "task_name",
    "args",
    "kwargs",
    "root_task_id",
    "parent_task_id",
    "chain_total",
    "pipeline_id",
    "pipeline",
    "stage_index",
    "queue",
)
# The winner's worker; a winner that names none (PENDING) keeps the known one. Every
# event after the publish names its worker, so this is the latest attempt's.
PREFERRED = ("worker",)
COLUMNS = (
    "task_id",
    *OUTCOME,
    *STATIC,
    *PREFERRED,
    "created_at",
    "started_at",
    "retry_count",
    "retry_reason",
    "redelivered",
)


def ts(at: float | None) -> datetime | None:
    return None if at is None else datetime.fromtimestamp(at, UTC)


def row_from_event(event: dict[str, Any]) -> dict[str, Any]:
    """A one-event task row (every column present, None where the event says nothing)."""
    status, at = event["status"], float(event["at"])
    row = {column: event.get(column) for column in COLUMNS}
    row.update(
        status_rank=int(event["rank"]),
        status_at=at,
        created_at=ts(at),
        started_at=ts(at) if status == STARTED else None,
        completed_at=ts(at) if status in TERMINAL else None,
        retry_count=int(event.get("retry_count") or 0),
        redelivered=bool(event.get("redelivered")),
    )
    if status == PENDING:
        row.update(worker=None)
    return row


def merge_rows(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The row for both rows' events (commutative and associative)."""
    new_wins = wins(new["status_rank"], new["status_at"], old["status_rank"], old["status_at"])
    winner, loser = (new, old) if new_wins else (old, new)
    out = {column: winner[column] for column in OUTCOME}
    out["task_id"] = old["task_id"]
    for column in STATIC:
        out[column] = old[column] if old[column] is not None else new[column]
    for column in PREFERRED:
        out[column] = winner[column] if winner[column] is not None else loser[column]
    out["created_at"] = _least(old["created_at"], new["created_at"])
    out["started_at"] = _greatest(old["started_at"], new["started_at"])
    out["retry_count"] = max(old["retry_count"], new["retry_count"])
    # The reason of the latest retry: the one recorded with the highest retry count.
    if new["retry_reason"] is not None and new["retry_count"] >= old["retry_count"]:
        out["retry_reason"] = new["retry_reason"]
    elif old["retry_reason"] is not None and old["retry_count"] >= new["retry_count"]:
        out["retry_reason"] = old["retry_reason"]
    else:
        out["retry_reason"] = None  # only an older retry's reason is known here; the stored one may be newer
    out["redelivered"] = old["redelivered"] or new["redelivered"]
    return out


def fold(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """task_id → the merged row of a batch's task events."""
    rows: dict[str, dict[str, Any]] = {}
    for event in events:
        row = row_from_event(event)
        old = rows.get(row["task_id"])
        rows[row["task_id"]] = row if old is None else merge_rows(old, row)
    return rows


def _least(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else min(a, b)


def _greatest(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else max(a, b)
