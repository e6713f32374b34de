"""each pipeline's trace context (W3C traceparent of its submission), so every stage, retry
and redelivery joins one trace; the status APIs show its trace id

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("pipeline_info", sa.Column("traceparent", sa.String(64), nullable=True))


def downgrade() -> None:
    op.drop_column("pipeline_info", "traceparent")
