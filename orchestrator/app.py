"""The Celery app: seed 003's settings and beyond, every value from
OrchestratorSettings, the one routing table, and the task modules."""

from __future__ import annotations

import logging

from celery import Celery, signals
from kombu import Queue

from orchestrator.publishing import resilient_send_task
from orchestrator.resources import Resources
from orchestrator.result_backend import masking, publish_only
from orchestrator.routing import CPU_QUEUE, QUEUES, celery_routes
from orchestrator.settings import OrchestratorSettings
from svc_runtime.logs import configure_logging


def celery_config(settings: OrchestratorSettings) -> dict:
    return {
        "broker_url": settings.broker_url,
        # Args, kwargs and results stored with secrets masked (orchestrator.result_backend).
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
        "task_queues": [Queue(name) for name in QUEUES],
        "task_default_queue": CPU_QUEUE,
        "task_routes": celery_routes(),
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
        "beat_schedule": {
            "cleanup": {"task": "tasks.maintenance.cleanup", "schedule": settings.cleanup_interval_seconds},
            "redeliver-lost": {"task": "tasks.maintenance.redeliver_lost", "schedule": settings.lost_task_check_seconds,
                               # a sweep that waited in the queue past the next one is pointless
                               "options": {"expires": settings.lost_task_check_seconds}},
        },
    }


def create_app(settings: OrchestratorSettings | None = None, producer: bool = False) -> Celery:
    """`producer=True` for processes that send tasks and read results but never
    block on them (the gateway): see orchestrator.result_backend."""
    settings = settings or OrchestratorSettings()
    app = Celery("aiworker", set_as_current=True)
    app.conf.update(celery_config(settings))
    if producer:
        app.conf.result_backend = publish_only(settings.result_backend)
    else:  # a worker publishing a pipeline's next stage must outlast a broker restart
        resilient_send_task(app, settings.publish_retry_seconds)
    app.aiworker = Resources(settings)  # per-process clients, blob store, Redis
    import orchestrator.tasks  # noqa: F401 - registers every task (shared_task) with this app

    if settings.tracking_enabled:
        from orchestrator.tracking import install_tracking

        install_tracking(app, settings)

    @signals.setup_logging.connect(weak=False)
    def _logging(loglevel: int | str | None = None, **_: object) -> None:  # replaces Celery's own setup
        # The worker's -l decides (aiworker-worker passes AIWORKER_LOG_LEVEL unless told otherwise).
        level = logging.getLevelName(loglevel) if isinstance(loglevel, int) else (loglevel or settings.log_level)
        configure_logging(str(level).lower(), settings.log_format)

    return app
