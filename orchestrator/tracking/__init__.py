"""Task tracking (seed 004, made lossless): every task recorded from Celery
signals into PostgreSQL through a Redis outbox, with live Redis hashes for
fast reads, and the queries the gateway serves (queries.py). Tracking builds on
the orchestrator's core (app, declarations, pipelines); the core never imports it.

    signals.py → events.py (masked records) → outbox.py (Redis stream + live hashes; spool.py if Redis is away)
    drainer.py (drainer_thread.py in workers, `python -m orchestrator.tracking drain` alone)
        → writer.py / merge.py (idempotent, order-independent upserts; each touched pipeline's state
          materialised) → models.py (task_info, pipeline_info)
    queries.py (pipeline_view.py: PostgreSQL's state + the live hash) → views.py (what the gateway serves)
    retention.py (beat's cleanup hook), recovery.py (beat's lost-stage redelivery)
"""

from orchestrator.tracking.install import install_tracking, registry_queries, tracked_app

__all__ = ["install_tracking", "registry_queries", "tracked_app"]
