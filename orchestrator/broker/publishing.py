"""Publishing that outlasts a broker restart, for workers.

A stage that finished publishes the next one (Celery's chain). If Redis went
away meanwhile, kombu retries on the pooled channel, and after a reconnect
that channel may be a closed one: its retry fails with AttributeError
("'NoneType' object has no attribute 'client'", kombu 5.6/5.7), the stage is
marked FAILURE though its work was done, and the pipeline stops. Every
publish goes through `app.send_task` (orchestrator.app.AiworkerCelery): on
broker trouble a worker's tries again on a fresh connection, with backoff, for
up to a time budget."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

import kombu.exceptions
import redis
import structlog
from celery import Celery

log = structlog.get_logger(__name__)
FIRST_DELAY, MAX_DELAY = 0.5, 2.0


def is_broker_trouble(exc: BaseException) -> bool:
    """A lost or refused broker connection, or kombu tripping over its own closed channel."""
    if isinstance(exc, (kombu.exceptions.OperationalError, redis.ConnectionError, redis.TimeoutError, ConnectionError)):
        return True
    if isinstance(exc, AttributeError) and "'NoneType' object" in str(exc):
        frame = exc.__traceback__
        while frame is not None and frame.tb_next is not None:
            frame = frame.tb_next
        return frame is not None and "/kombu/" in frame.tb_frame.f_code.co_filename
    return False


# The app publishing right now: Celery's before_task_publish signal names only the
# task, and current_app is just the last app created when a process has several.
# Tracking's publish handler reads it.
publishing_app: ContextVar[Any] = ContextVar("aiworker_publishing_app", default=None)


def send_with_retry(
    app: Celery, send: Callable[..., Any], name: str, args: tuple, kwargs: dict, budget_seconds: float
) -> Any:
    """send(name, *args, **kwargs); on broker trouble, again on a fresh connection
    with backoff until `budget_seconds` are spent (the first try uses Celery's
    own producer pool)."""
    deadline = time.monotonic() + budget_seconds
    delay, attempt = FIRST_DELAY, 0
    while True:
        try:
            if attempt == 0:
                return send(name, *args, **kwargs)
            with app.connection_for_write() as connection, connection.Producer() as producer:
                return send(name, *args, **{**kwargs, "producer": producer})
        except Exception as exc:
            if not is_broker_trouble(exc) or time.monotonic() + delay > deadline:
                raise
            attempt += 1
            log.warning(
                "publish_retry", task_name=name, attempt=attempt, in_seconds=delay, error=f"{type(exc).__name__}: {exc}"
            )
            time.sleep(delay)
            delay = min(MAX_DELAY, delay * 2)
