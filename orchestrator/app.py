"""The Celery app: the settings of docs/decisions/0010-celery-settings.md and beyond, every value from
OrchestratorSettings, the queues, and the declared tasks with the routes and
beat schedule derived from their declarations. Tracking is installed on top
by the processes that want it (orchestrator.assembly.tracked_app)."""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import Celery, signals

from orchestrator.broker import revokes
from orchestrator.broker.headers import PIPELINE_TRACE, PUBLISHED_AT
from orchestrator.broker.publishing import publishing_app, send_with_retry
from orchestrator.broker.result_backend import masking, publish_only
from orchestrator.broker.routing import CPU_QUEUE, celery_queues
from orchestrator.pipelines.declarations import register_declared
from orchestrator.pipelines.resources import Resources
from orchestrator.settings import OrchestratorSettings
from svc_runtime import tracing
from svc_runtime.logs import configure_logging


class AiworkerCelery(Celery):
    """Every publish (apply_async, chains, retries) goes through send_task: here it
    marks which app publishes (for tracking's publish handler) and, in workers,
    outlasts a broker restart (orchestrator.broker.publishing)."""

    aiworker: Resources
    publish_retry_seconds: float = 0.0  # 0: no retries (producers fail fast and say so)

    def send_task(self, name: str, *args: Any, **kwargs: Any) -> Any:
        # When it was published: how long messages wait in a queue (the oldest's age, the
        # time to start) is read from this header.
        headers = kwargs["headers"] = {**(kwargs.get("headers") or {}), PUBLISHED_AT: round(time.time(), 3)}
        token = publishing_app.set(self)
        try:
            # A pipeline's stage is published in its pipeline's trace (a child of the submission,
            # wherever it is sent from), so one trace holds every stage.
            with tracing.attached(headers.get(PIPELINE_TRACE)):
                if self.publish_retry_seconds <= 0:
                    return super().send_task(name, *args, **kwargs)
                return send_with_retry(self, super().send_task, name, args, kwargs, self.publish_retry_seconds)
        finally:
            publishing_app.reset(token)


def celery_config(settings: OrchestratorSettings) -> dict:
    return {
        "broker_url": settings.broker_url,
        # Args, kwargs and results stored with secrets masked (orchestrator.broker.result_backend).
        "result_backend": masking(settings.result_backend),
        # JSON only: pickle would let a broker message run code.
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "timezone": "UTC",
        "enable_utc": True,
        # Ack after the work is done; a killed pool child's task goes back to the queue.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_track_started": True,
        "result_extended": True,
        "task_soft_time_limit": settings.task_soft_time_limit,
        "task_time_limit": settings.task_time_limit,
        "result_expires": settings.result_expires,
        "broker_transport_options": {
            # Above the hard limit, or a long task is redelivered while it still runs.
            "visibility_timeout": settings.visibility_timeout,
            # kombu sweeps every interval × throttle (10 × 10 s by default): make it the interval.
            "unacked_restore_interval": settings.redelivery_sweep_seconds,
            "unacked_restore_throttle": 1,
            # A worker killed during a sweep keeps its lock this long (kombu: 300 s) and no one
            # redelivers meanwhile; a sweep takes milliseconds, and restores are transactional.
            "unacked_mutex_expire": max(10, 2 * settings.redelivery_sweep_seconds),
            "queue_order_strategy": "priority",
            "priority_steps": list(range(10)),
            "sep": ":",
        },
        "result_backend_transport_options": {"retry_policy": {"timeout": 5.0}},
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,
        "redis_socket_timeout": 10,
        "redis_socket_connect_timeout": 5,
        "redis_backend_health_check_interval": 10,
        "result_backend_always_retry": True,
        "result_backend_max_retries": 10,
        "task_queues": celery_queues(),
        "task_default_queue": CPU_QUEUE,
        "task_default_exchange": CPU_QUEUE,
        "task_default_routing_key": CPU_QUEUE,
        "task_create_missing_queues": False,
        # Events, so celery inspect / celery events / Flower work unchanged.
        "worker_send_task_events": settings.worker_send_events,
        "task_send_sent_event": settings.worker_send_events,
        "worker_concurrency": settings.worker_concurrency,
        "worker_max_tasks_per_child": settings.worker_max_tasks_per_child,
        "worker_hijack_root_logger": False,
        # False: on a lost broker connection the running tasks finish, and their messages (unacked in
        # Redis) come back after the visibility timeout (stages are idempotent). True makes Celery 5.6
        # mark them RETRY in the result backend, the same Redis that just went away, and the worker
        # dies of the BackendStoreError (tests/fault/test_redis_restart.py).
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        # task_routes and beat_schedule: derived from the task declarations (register_declared)
        "beat_scheduler": "orchestrator.broker.beat:LeasedScheduler",
    }


def _trace_pool_child(**_: object) -> None:
    """Tracing is set up in each pool child, after the fork (spans made before it vanish)."""
    if tracing.configure("aiworker-worker"):
        tracing.instrument_celery()
        tracing.instrument_grpc_clients()
        tracing.instrument_data_clients()


def _trace_single_process_worker(sender: object = None, **_: object) -> None:
    """A solo or threads pool runs tasks in this process: no fork, set up here."""
    if "prefork" not in str(getattr(sender, "pool_cls", "prefork")).lower():
        _trace_pool_child()


def create_app(settings: OrchestratorSettings | None = None, producer: bool = False) -> AiworkerCelery:
    """`producer=True` for processes that send tasks and read results but never
    block on them (the gateway): see orchestrator.broker.result_backend."""
    settings = settings or OrchestratorSettings()
    app = AiworkerCelery("aiworker", set_as_current=True)
    app.conf.update(celery_config(settings))
    if producer:
        app.conf.result_backend = publish_only(settings.result_backend)
    else:  # a worker publishing a pipeline's next stage must outlast a broker restart
        app.publish_retry_seconds = settings.publish_retry_seconds
    app.aiworker = Resources(settings)  # per-process clients, blob store, Redis
    import orchestrator.pipelines.registry
    import orchestrator.pipelines.tasks.maintenance

    orchestrator.pipelines.registry.load_pipeline_modules(settings.pipeline_modules)
    register_declared(app)
    revokes.install(app)
    signals.worker_process_init.connect(_trace_pool_child, weak=False, dispatch_uid="aiworker.tracing.child")
    signals.worker_init.connect(_trace_single_process_worker, weak=False, dispatch_uid="aiworker.tracing.worker")

    @signals.setup_logging.connect(weak=False)
    def _logging(loglevel: int | str | None = None, **_: object) -> None:  # replaces Celery's own setup
        # The worker's -l decides (aiworker-worker passes AIWORKER_LOG_LEVEL unless told otherwise).
        level = logging.getLevelName(loglevel) if isinstance(loglevel, int) else (loglevel or settings.log_level)
        configure_logging(str(level).lower(), settings.log_format)

    return app
