"""Retention: task and pipeline rows older than settings.task_retention_days
are deleted by beat's cleanup task, in bounded chunks (short locks)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from orchestrator.settings import OrchestratorSettings
from orchestrator.storage.db.engine import engine_for

CHUNK_ROWS = 10_000

_DELETE_TASKS = text("""
    DELETE FROM task_info WHERE id IN (
        SELECT id FROM task_info WHERE created_at < :cutoff ORDER BY created_at LIMIT :chunk)
""")
_DELETE_PIPELINES = text("""
    DELETE FROM pipeline_info WHERE pipeline_id IN (
        SELECT pipeline_id FROM pipeline_info WHERE created_at < :cutoff ORDER BY created_at LIMIT :chunk)
""")


def delete_older_than(database_url: str, cutoff: datetime) -> int:
    removed = 0
    engine = engine_for(database_url)
    for statement in (_DELETE_TASKS, _DELETE_PIPELINES):
        while True:
            with engine.begin() as conn:
                count = conn.execute(statement, {"cutoff": cutoff, "chunk": CHUNK_ROWS}).rowcount
            removed += count
            if count < CHUNK_ROWS:
                break
    return removed


def cleanup_tracked_rows(settings: OrchestratorSettings) -> int:
    """The CLEANUP_HOOKS entry: rows removed."""
    cutoff = datetime.now(UTC) - timedelta(days=settings.task_retention_days)
    return delete_older_than(settings.tracking_database_url, cutoff)
