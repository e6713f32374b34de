"""Hooking tracking into a Celery app: signal handlers, the log filter that
masks secrets in Celery's own lines, the retention hook for beat's cleanup,
beat's lost-stage redelivery (recovery.py), and a drainer thread in each
worker's main process. `tracked_app` is the app every aiworker process runs:
the orchestrator's, with tracking when the settings enable it."""

from __future__ import annotations

from typing import Any

from celery import Celery, signals

from orchestrator.app import AiworkerCelery, celery_config, create_app
from orchestrator.declarations import register_declared
from orchestrator.masking import install_log_filter
from orchestrator.pipelines import PIPELINES
from orchestrator.routing import QUEUES
from orchestrator.settings import OrchestratorSettings
from orchestrator.tasks.maintenance import CLEANUP_HOOKS
from orchestrator.tracking import signals as tracking_signals
from orchestrator.tracking.drainer import Drainer
from orchestrator.tracking.drainer_thread import DrainerThread
from orchestrator.tracking.queries import TrackingQueries
from orchestrator.tracking.retention import cleanup_tracked_rows
from orchestrator.tracking.tracker import Tracker


def tracked_app(settings: OrchestratorSettings | None = None, producer: bool = False) -> AiworkerCelery:
    """orchestrator.app.create_app, with tracking installed unless settings.tracking_enabled is off."""
    settings = settings or OrchestratorSettings()
    app = create_app(settings, producer=producer)
    if settings.tracking_enabled:
        install_tracking(app, settings)
    return app


def registry_queries(settings: OrchestratorSettings) -> TrackingQueries:
    """The queries over the registry's pipelines and the queues (what the gateway serves)."""
    return TrackingQueries(settings, PIPELINES, QUEUES, celery_config(settings)["broker_transport_options"])


def install_tracking(app: Celery, settings: OrchestratorSettings) -> Tracker:
    import orchestrator.tracking.recovery  # noqa: F401 - declares beat's redeliver_lost

    tracker = Tracker(settings)
    app.aiworker_tracker = tracker
    tracking_signals.connect()
    install_log_filter(tracker.masker)
    CLEANUP_HOOKS["tracked_rows"] = cleanup_tracked_rows
    register_declared(app)
    signals.worker_ready.connect(_on_worker_ready, weak=False, dispatch_uid="aiworker.tracking.drainer_start")
    signals.worker_shutdown.connect(_stop_drainer, weak=False, dispatch_uid="aiworker.tracking.drainer_stop")
    return tracker


def _on_worker_ready(sender: Any = None, **_: Any) -> None:
    tracker = tracking_signals.tracker_of(getattr(sender, "app", None))
    if tracker is None:
        return
    tracker.hostname = getattr(sender, "hostname", None)
    if not tracker.settings.tracking_drain_in_worker:
        return
    if tracker.drainer is None or not tracker.drainer.alive():  # worker_ready fires again after a reconnect
        tracker.drainer = DrainerThread(Drainer.from_settings(tracker.settings)).start()


def _stop_drainer(sender: Any = None, **_: Any) -> None:
    tracker = tracking_signals.tracker_of(getattr(sender, "app", None))
    if tracker is not None and tracker.drainer is not None:
        tracker.drainer.stop()
        tracker.drainer = None
