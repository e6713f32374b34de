"""Publishing that outlasts a broker restart, for workers.

A stage that finished publishes the next one (Celery's chain). If Redis went
away meanwhile, kombu retries on the pooled channel, and after a reconnect
that channel may be a closed one: its retry fails with AttributeError
("'NoneType' object has no attribute 'client'", kombu 5.6/5.7), the stage is
marked FAILURE though its work was done, and the pipeline stops. Every
publish goes through `app.send_task`, so it is wrapped: on broker trouble it
tries again on a fresh connection, with backoff, for up to a time budget."""

from __future__ import annotations

import time
from typing import Any, Callable

import kombu.exceptions
import redis
import structlog
from celery import Celery

log = structlog.get_logger(__name__)
FIRST_DELAY, MAX_DELAY = 0.5, 2.0


def is_broker_trouble(exc: BaseException) -> bool:
    """A lost or refused broker connection, or kombu tripping over its own closed channel."""
    if isinstance(exc, (kombu.exceptions.OperationalError, redis.ConnectionError, redis.TimeoutError,
                        ConnectionError)):
        return True
    if isinstance(exc, AttributeError) and "'NoneType' object" in str(exc):
        frame = exc.__traceback__
        while frame is not None and frame.tb_next is not None:
            frame = frame.tb_next
        return frame is not None and "/kombu/" in frame.tb_frame.f_code.co_filename
    return False


def resilient_send_task(app: Celery, budget_seconds: float) -> None:
    """Wraps app.send_task (once); the first try uses Celery's own producer pool."""
    if getattr(app.send_task, "_aiworker_resilient", False):
        return
    original: Callable[..., Any] = app.send_task

    def send_task(name: str, *args: Any, **kwargs: Any) -> Any:
        deadline = time.monotonic() + budget_seconds
        delay, attempt = FIRST_DELAY, 0
        while True:
            try:
                if attempt == 0:
                    return original(name, *args, **kwargs)
                with app.connection_for_write() as connection, connection.Producer() as producer:
                    return original(name, *args, **{**kwargs, "producer": producer})
            except Exception as exc:  # noqa: BLE001 - re-raised unless it is broker trouble
                if not is_broker_trouble(exc) or time.monotonic() + delay > deadline:
                    raise
                attempt += 1
                log.warning("publish_retry", task_name=name, attempt=attempt, in_seconds=delay,
                            error=f"{type(exc).__name__}: {exc}")
                time.sleep(delay)
                delay = min(MAX_DELAY, delay * 2)

    send_task._aiworker_resilient = True  # type: ignore[attr-defined]
    app.send_task = send_task
