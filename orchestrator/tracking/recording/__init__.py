"""The write path of tracking: Celery signals → masked records → the Redis
outbox and live hashes (a local spool while Redis is away) → the drainer →
idempotent upserts into PostgreSQL."""
