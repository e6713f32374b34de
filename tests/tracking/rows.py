"""Reading tracking rows in tests, and waiting for them."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import text

from orchestrator.storage.db.engine import engine_for


def task_rows(database_url: str, where: str, **params: Any) -> list[dict[str, Any]]:
    with engine_for(database_url).connect() as conn:
        return [
            dict(r)
            for r in conn.execute(
                text(f"SELECT * FROM task_info WHERE {where} ORDER BY stage_index NULLS LAST, created_at"), params
            ).mappings()
        ]


def rows_of(database_url: str, task_ids: list[str]) -> list[dict[str, Any]]:
    """The rows of these tasks, in the order of `task_ids` (missing ones left out)."""
    by_id = {r["task_id"]: r for r in task_rows(database_url, "task_id = ANY(:ids)", ids=list(task_ids))}
    return [by_id[t] for t in task_ids if t in by_id]


def wait_for(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    """Polls `check` until it returns something truthy; its last value on timeout is in the error."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise TimeoutError(f"{what}: not after {timeout:.0f}s (last: {last!r})")


def wait_statuses(database_url: str, task_ids: list[str], expected: list[str], timeout: float = 60) -> list[dict]:
    """Waits until the tasks' rows have exactly these statuses (in order)."""

    def check() -> list[dict] | None:
        rows = rows_of(database_url, task_ids)
        return rows if [r["status"] for r in rows] == expected else None

    try:
        return wait_for(check, timeout, f"statuses {expected}")
    except TimeoutError as exc:
        got = [(r["task_name"], r["status"]) for r in rows_of(database_url, task_ids)]
        raise TimeoutError(f"{exc}; rows now: {got}") from None
