"""Alembic environment: the URL comes from the Config's attributes (set by
orchestrator.storage.db.migrate); an advisory lock serialises concurrent upgrades."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, text

import orchestrator.tracking.models  # noqa: F401 - tracking tables on the same metadata
from orchestrator.storage.db.models import Base

MIGRATION_LOCK = 7_318_255_001  # arbitrary, constant advisory lock id

target_metadata = Base.metadata


def run_migrations_online() -> None:
    url = context.config.attributes["database_url"]
    engine = create_engine(url)
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": MIGRATION_LOCK})
        connection.commit()
        try:
            context.configure(connection=connection, target_metadata=target_metadata)
            with context.begin_transaction():
                context.run_migrations()
            connection.commit()
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": MIGRATION_LOCK})
            connection.commit()
    engine.dispose()


run_migrations_online()
