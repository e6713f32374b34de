"""Celery signal handlers: each turns a signal into tracking records and hands
them to the app's outbox (a Redis round trip, no PostgreSQL). Handlers are
connected once per process and find the Tracker through the sending task's app
(or the current app for publishes, whose signal carries only the task name).

Which signal fires where (celery/app/trace.py, celery/worker/request.py):
- before_task_publish: the producer, or the worker publishing a chain's next link or a retry
- task_prerun / task_success / task_retry / task_failure / task_postrun: the pool process
- task_failure for a hard time limit (Request.on_timeout) and for a lost worker when the
  message is not requeued (Request.on_failure): the worker's main process
- task_revoked: the worker's main process
- task_unknown: the main process, for a message naming no registered task
A lost worker with task_reject_on_worker_lost requeues the message without any signal;
the redelivery's task_prerun records `redelivered`."""

from __future__ import annotations

from typing import Any

import structlog
from celery import current_app, signals
from celery import states as celery_states

from orchestrator.broker.publishing import publishing_app
from orchestrator.tracking.recording import events
from orchestrator.tracking.recording.tracker import Tracker
from orchestrator.tracking.states import IGNORED, REJECTED, REVOKED

log = structlog.get_logger(__name__)
_UID = "aiworker.tracking"


def tracker_of(app: Any) -> Tracker | None:
    return getattr(app, "aiworker_tracker", None)


def _task_tracker(task: Any) -> Tracker | None:
    return tracker_of(getattr(task, "app", None))


def _guard(handler):
    """Celery swallows handler exceptions; we log them once, concisely, and never raise."""

    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            handler(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001
            log.error("tracking_signal_failed", signal=handler.__name__, error=f"{type(exc).__name__}: {exc}")

    wrapper.__name__ = handler.__name__
    return wrapper


@_guard
def on_publish(
    sender: Any = None,
    body: Any = None,
    routing_key: str | None = None,
    headers: dict[str, Any] | None = None,
    **_: Any,
) -> None:
    tracker = tracker_of(publishing_app.get() or current_app._get_current_object())
    if tracker is None or not headers:
        return
    records = events.published(headers, body, routing_key, tracker.masker)
    if records:  # the message's own reprs (worker logs, events, Flower) show the masked values too
        headers["argsrepr"], headers["kwargsrepr"] = repr(records[0]["args"]), repr(records[0]["kwargs"])
    tracker.emit(records)


@_guard
def on_prerun(sender: Any = None, task_id: str | None = None, task: Any = None, **_: Any) -> None:
    tracker = _task_tracker(task)
    if tracker is None or task.request.id != task_id:
        return
    tracker.hold_started(task_id, events.started(task.name, task.request))


@_guard
def on_success(sender: Any = None, result: Any = None, runtime: float | None = None, **_: Any) -> None:
    tracker = _task_tracker(sender)
    if tracker is None or not sender.request.id:
        return
    task_id = sender.request.id
    measured = tracker.runtime(task_id)
    tracker.finish(
        task_id,
        [
            events.succeeded(
                sender.name, sender.request, result, runtime if runtime is not None else measured, tracker.masker
            )
        ],
    )


@_guard
def on_retry(sender: Any = None, request: Any = None, reason: Any = None, **_: Any) -> None:
    tracker = _task_tracker(sender)
    if tracker is None or request is None:
        return
    tracker.runtime(request.id)
    tracker.finish(request.id, [events.retried(sender.name, request, reason, tracker.masker)])


@_guard
def on_failure(
    sender: Any = None, task_id: str | None = None, exception: BaseException | None = None, einfo: Any = None, **_: Any
) -> None:
    tracker = _task_tracker(sender)
    if tracker is None or not task_id:
        return
    request = sender.request if sender.request.id == task_id else None  # None: reported by the parent process
    traceback = getattr(einfo, "traceback", None)
    record = events.failed(
        task_id,
        sender.name,
        request,
        exception,
        traceback,
        tracker.runtime(task_id),
        tracker.masker,
        worker=tracker.hostname,
    )
    links = events.chain_links(request.chain) if request is not None else tracker.links_after(task_id)
    tracker.finish(task_id, [record, *events.skipped(links, task_id, "an earlier stage failed")])


@_guard
def on_postrun(
    sender: Any = None, task_id: str | None = None, task: Any = None, state: str | None = None, **_: Any
) -> None:
    tracker = _task_tracker(task)
    if tracker is None or not task_id:
        return
    tracker.started_at.pop(task_id, None)
    records = []
    if state in (celery_states.REJECTED, celery_states.IGNORED):  # no other signal reports these
        status = REJECTED if state == celery_states.REJECTED else IGNORED
        request = task.request
        records.append(
            events.task_record(
                task_id, task.name, status, request.retries or 0, worker=getattr(request, "hostname", None)
            )
        )
    tracker.finish(task_id, records)  # sends a STARTED still held (e.g. an internal error)


@_guard
def on_revoked(
    sender: Any = None,
    request: Any = None,
    terminated: bool = False,
    signum: Any = None,
    expired: bool = False,
    **_: Any,
) -> None:
    tracker = _task_tracker(sender)
    if tracker is None or request is None or not request.id:
        return
    why = "expired" if expired else f"terminated by signal {signum}" if terminated else "revoked"
    record = events.task_record(
        request.id,
        sender.name,
        REVOKED,
        None,
        error_message=why,
        error_type="Revoked",
        worker=getattr(request, "hostname", None) or tracker.hostname,
    )
    links = events.chain_links(getattr(request, "chain", None))
    tracker.emit([record, *events.skipped(links, request.id, "an earlier stage was revoked")])


@_guard
def on_unknown(
    sender: Any = None, message: Any = None, exc: Any = None, name: str | None = None, id: str | None = None, **_: Any
) -> None:
    tracker = tracker_of(getattr(sender, "app", None)) or tracker_of(current_app._get_current_object())
    if tracker is None or not id:
        return
    tracker.emit(
        [
            events.task_record(
                id,
                name or "",
                "FAILURE",
                None,
                error_type="NotRegistered",
                error_message=f"no task named {name!r} is registered on the worker",
                worker=getattr(sender, "hostname", None),
            )
        ]
    )


def connect() -> None:
    """Connects the handlers once per process (dispatch_uid makes it idempotent)."""
    for signal, handler in (
        (signals.before_task_publish, on_publish),
        (signals.task_prerun, on_prerun),
        (signals.task_success, on_success),
        (signals.task_retry, on_retry),
        (signals.task_failure, on_failure),
        (signals.task_postrun, on_postrun),
        (signals.task_revoked, on_revoked),
        (signals.task_unknown, on_unknown),
    ):
        signal.connect(handler, weak=False, dispatch_uid=f"{_UID}.{handler.__name__}")
