"""Module-level app for Celery's own CLI and tools:

    celery -A orchestrator.celery_entry inspect registered
    celery -A orchestrator.celery_entry events
    celery -A orchestrator.celery_entry flower

The one module that builds settings (from AIWORKER_* env) at import, because
Celery's CLI needs an app object to import."""

from orchestrator.assembly import tracked_app

app = tracked_app()
