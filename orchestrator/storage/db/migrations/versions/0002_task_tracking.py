"""task tracking: task_info and pipeline_info

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "task_info",
        sa.Column("id", sa.BigInteger(), primary_key=True, autoincrement=True),
        sa.Column("task_id", sa.String(64), nullable=False, unique=True),
        sa.Column("task_name", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_rank", sa.BigInteger(), nullable=False),
        sa.Column("status_at", sa.Double(), nullable=False),
        sa.Column("args", postgresql.JSONB(), nullable=True),
        sa.Column("kwargs", postgresql.JSONB(), nullable=True),
        sa.Column("result", postgresql.JSONB(), nullable=True),
        sa.Column("error_type", sa.String(255), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("traceback", sa.Text(), nullable=True),
        sa.Column("retry_count", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("retry_reason", sa.Text(), nullable=True),
        sa.Column("redelivered", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("root_task_id", sa.String(64), nullable=True),
        sa.Column("parent_task_id", sa.String(64), nullable=True),
        sa.Column("chain_total", sa.Integer(), nullable=True),
        sa.Column("pipeline_id", sa.String(64), nullable=True),
        sa.Column("pipeline", sa.String(64), nullable=True),
        sa.Column("stage_index", sa.Integer(), nullable=True),
        sa.Column("queue", sa.String(128), nullable=True),
        sa.Column("worker", sa.String(255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("runtime", sa.Double(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_task_info_root_task_id", "task_info", ["root_task_id"])
    op.create_index("ix_task_info_parent_task_id", "task_info", ["parent_task_id"])
    op.create_index("ix_task_info_created_at", "task_info", ["created_at", "id"])
    op.create_index("ix_task_info_status_created_at", "task_info", ["status", "created_at", "id"])
    op.create_index("ix_task_info_task_name_created_at", "task_info", ["task_name", "created_at", "id"])
    op.create_index("ix_task_info_pipeline_id", "task_info", ["pipeline_id", "stage_index"])
    op.create_index("ix_task_info_pipeline_created_at", "task_info", ["pipeline", "created_at", "id"])
    op.create_table(
        "pipeline_info",
        sa.Column("pipeline_id", sa.String(64), primary_key=True),
        sa.Column("pipeline", sa.String(64), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=True),
        sa.Column("root_task_id", sa.String(64), nullable=True),
        sa.Column("stage_count", sa.Integer(), nullable=False),
        sa.Column("stages", postgresql.JSONB(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_pipeline_info_created_at", "pipeline_info", ["created_at"])
    op.create_index("ix_pipeline_info_pipeline_created_at", "pipeline_info", ["pipeline", "created_at"])


def downgrade() -> None:
    op.drop_table("pipeline_info")
    op.drop_table("task_info")
