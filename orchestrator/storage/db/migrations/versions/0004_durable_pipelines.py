"""what a re-send needs, kept with the tracking rows: each stage's whole output,
and each pipeline's first input and priority (lost-stage redelivery then works
from PostgreSQL alone, after the broker lost its memory)

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("task_info", sa.Column("output", postgresql.JSONB(), nullable=True))
    op.add_column("pipeline_info", sa.Column("input", postgresql.JSONB(), nullable=True))
    op.add_column("pipeline_info", sa.Column("priority", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column("pipeline_info", "priority")
    op.drop_column("pipeline_info", "input")
    op.drop_column("task_info", "output")
