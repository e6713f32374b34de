"""Task tracking (seed 004, made lossless): every task recorded from Celery
signals into PostgreSQL through a Redis outbox, with live Redis hashes for
fast reads, and the queries the gateway serves (queries.py).

    signals.py → events.py (masked records) → outbox.py (Redis stream + live hashes; spool.py if Redis is away)
    drainer.py (drainer_thread.py in workers, `python -m orchestrator.tracking drain` alone)
        → writer.py / merge.py (idempotent, order-independent upserts) → models.py (task_info, pipeline_info)
    queries.py / status_view.py → views.py (what the gateway serves); retention.py (beat's cleanup hook)
"""

from orchestrator.tracking.install import install_tracking

__all__ = ["install_tracking"]
