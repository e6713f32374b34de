"""Where pipeline data lives: blobs.py (content-addressed blobs in a folder or
on S3, passed between stages by reference) and db/ (the engine, documents and
their pgvector chunks, the Alembic migrations of every table)."""
