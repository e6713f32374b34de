"""indexes the metrics exporter reads its new rows by (orchestrator/tracking/
exporter_rows.py): tasks by started_at and by completed_at, pipelines by
finished_at, each with its row key (the high-water mark's tie-break); partial,
so rows without the time (queued tasks, running pipelines) cost nothing.
Built CONCURRENTLY: drainers keep writing while a large table is indexed.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

INDEXES = (
    ("ix_task_info_started_at", "task_info", ("started_at", "id")),
    ("ix_task_info_completed_at", "task_info", ("completed_at", "id")),
    ("ix_pipeline_info_finished_at", "pipeline_info", ("finished_at", "pipeline_id")),
)


def upgrade() -> None:
    with op.get_context().autocommit_block():
        for name, table, columns in INDEXES:
            op.create_index(
                name,
                table,
                list(columns),
                postgresql_where=sa.text(f"{columns[0]} IS NOT NULL"),
                postgresql_concurrently=True,
                if_not_exists=True,
            )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        for name, table, _ in INDEXES:
            op.drop_index(name, table_name=table, postgresql_concurrently=True, if_exists=True)
