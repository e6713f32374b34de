"""Hooking tracking into a Celery app: signal handlers, the log filter that
masks secrets in Celery's own lines, the retention hook for beat's cleanup,
and a drainer thread in each worker's main process."""

from __future__ import annotations

from typing import Any

from celery import Celery, signals

from orchestrator.masking import install_log_filter
from orchestrator.pipelines.declarations import register_declared
from orchestrator.pipelines.tasks.maintenance import CLEANUP_HOOKS
from orchestrator.settings import OrchestratorSettings
from orchestrator.tracking.recording import signals as tracking_signals
from orchestrator.tracking.recording.drainer import Drainer
from orchestrator.tracking.recording.drainer_thread import DrainerThread
from orchestrator.tracking.recording.tracker import Tracker
from orchestrator.tracking.retention import cleanup_tracked_rows


def install_tracking(app: Celery, settings: OrchestratorSettings) -> Tracker:
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
