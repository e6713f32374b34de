"""chunk embeddings as pgvector's vector(dimension) with an HNSW index (cosine),
converted from the REAL[] column

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

DEFAULT_DIMENSION = 384  # all-MiniLM-L6-v2, the bundled embedder


def upgrade() -> None:
    conn = op.get_bind()
    available = conn.execute(sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")).first()
    if available is None:
        raise RuntimeError(
            "this PostgreSQL server has no pgvector extension, which aiworker needs for its chunk vectors and "
            "search: use a server with pgvector (the pgvector/pgvector image, Debian's postgresql-NN-pgvector, "
            "or the embedded one `make up` starts)"
        )
    dimension = int(context.config.attributes.get("embedding_dimension", DEFAULT_DIMENSION))
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    op.execute(
        f"ALTER TABLE chunks ALTER COLUMN embedding TYPE vector({dimension}) USING embedding::vector({dimension})"
    )
    op.execute("CREATE INDEX ix_chunks_embedding_hnsw ON chunks USING hnsw (embedding vector_cosine_ops)")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_chunks_embedding_hnsw")
    op.execute("ALTER TABLE chunks ALTER COLUMN embedding TYPE real[] USING embedding::real[]")
