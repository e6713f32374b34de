"""pipeline_info keeps each pipeline's current stage states and overall state
(materialised by the tracking writer), so a status read is one row

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BACKFILL_CHUNK = 1000


def upgrade() -> None:
    op.add_column("pipeline_info", sa.Column("stage_states", postgresql.JSONB(), nullable=False, server_default="[]"))
    op.add_column("pipeline_info", sa.Column("overall_state", sa.String(16), nullable=False, server_default="PENDING"))
    op.add_column("pipeline_info", sa.Column("completed_steps", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("pipeline_info", sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "pipeline_info",
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_pipeline_info_state_created_at", "pipeline_info", ["overall_state", "created_at"])
    _backfill(op.get_bind())


def _backfill(conn: sa.Connection) -> None:
    """Materialises the pipelines tracked before this revision (the writer keeps it from now on)."""
    from orchestrator.tracking.recording.writer import materialise_pipelines

    after = ""
    while True:
        ids = list(
            conn.execute(
                sa.text(
                    "SELECT pipeline_id FROM pipeline_info WHERE pipeline_id > :after ORDER BY pipeline_id LIMIT :n"
                ),
                {"after": after, "n": BACKFILL_CHUNK},
            ).scalars()
        )
        if not ids:
            return
        materialise_pipelines(conn, ids)
        after = ids[-1]


def downgrade() -> None:
    op.drop_index("ix_pipeline_info_state_created_at", table_name="pipeline_info")
    for column in ("updated_at", "finished_at", "completed_steps", "overall_state", "stage_states"):
        op.drop_column("pipeline_info", column)
