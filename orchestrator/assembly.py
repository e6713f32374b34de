"""The app every aiworker process runs: the orchestrator's Celery app with
tracking installed (unless the settings turn it off) and beat's recovery of
lost stages, plus the tracking queries over the registry's pipelines. The
composition root of the orchestrator: the layers below it never import it."""

from __future__ import annotations

from orchestrator.app import AiworkerCelery, celery_config, create_app
from orchestrator.broker.routing import QUEUES
from orchestrator.pipelines.registry import PIPELINES
from orchestrator.settings import OrchestratorSettings
from orchestrator.tracking.install import install_tracking
from orchestrator.tracking.reading.queries import TrackingQueries


def tracked_app(settings: OrchestratorSettings | None = None, producer: bool = False) -> AiworkerCelery:
    """orchestrator.app.create_app, with tracking installed unless settings.tracking_enabled is off."""
    settings = settings or OrchestratorSettings()
    app = create_app(settings, producer=producer)
    if settings.tracking_enabled:
        # Recovery reads the tracked rows, so it exists only where tracking does; importing it
        # declares beat's redeliver_lost, which install_tracking then registers on the app.
        import orchestrator.recovery  # noqa: F401

        install_tracking(app, settings)
    return app


def registry_queries(settings: OrchestratorSettings) -> TrackingQueries:
    """The queries over the registry's pipelines and the queues (what the gateway serves)."""
    return TrackingQueries(settings, PIPELINES, QUEUES, celery_config(settings)["broker_transport_options"])
