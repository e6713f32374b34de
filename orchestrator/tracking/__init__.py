"""Task tracking, lossless: every task recorded from Celery signals into
PostgreSQL through a Redis outbox, with live Redis hashes for fast reads, and
the queries the gateway serves. Tracking builds on the orchestrator's core
(the app, the pipelines); the core never imports it.

    recording/  signals.py → events.py (masked records) → outbox.py (Redis stream + live hashes;
                spool.py while Redis is away) → drainer.py (drainer_thread.py inside workers,
                `python -m orchestrator.tracking drain` alone) → writer.py / merge.py
                (idempotent, order-independent upserts; each touched pipeline's state materialised)
    reading/    queries.py (PostgreSQL's state with the live hash laid over it), inputs.py (a stage's
                input, for re-sends)
    states.py   the status vocabulary and its precedence      models.py   task_info, pipeline_info
    views.py    what the gateway serves                       pipeline_view.py   stages → a status
    retention.py  beat's cleanup of old rows                  install.py  hooking it into an app
"""
