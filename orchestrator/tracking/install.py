"""Hooking tracking into a Celery app: signal handlers, the log filter that
masks secrets in Celery's own lines, the retention hook for beat, and a
drainer thread in each worker's main process."""

from __future__ import annotations

from typing import Any

from celery import Celery, signals

from orchestrator.settings import OrchestratorSettings
from orchestrator.tracking import signals as tracking_signals
from orchestrator.tracking.drainer import Drainer
from orchestrator.tracking.drainer_thread import DrainerThread
from orchestrator.tracking.masking import install_log_filter
from orchestrator.tracking.retention import cleanup_tracked_rows
from orchestrator.tracking.tracker import Tracker


def install_tracking(app: Celery, settings: OrchestratorSettings) -> Tracker:
    from orchestrator.tasks.maintenance import CLEANUP_HOOKS

    tracker = Tracker(settings)
    app.aiworker_tracker = tracker
    tracking_signals.connect()
    tracking_signals.mark_publishing_app(app)
    install_log_filter(tracker.masker)
    CLEANUP_HOOKS["tracked_rows"] = cleanup_tracked_rows
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
