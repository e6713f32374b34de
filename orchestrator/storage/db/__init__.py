"""PostgreSQL: engine per process, the schema (SQLAlchemy models) and its
Alembic migrations. `python -m orchestrator.storage.db upgrade` brings a database to head."""

from orchestrator.storage.db.engine import engine_for, session_scope
from orchestrator.storage.db.migrate import upgrade

__all__ = ["engine_for", "session_scope", "upgrade"]
