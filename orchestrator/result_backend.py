"""A Redis result backend for processes that publish tasks but never block on
their results (the gateway, tests' producers).

Celery's Redis backend subscribes to the result channel of every task a
producer sends (for `AsyncResult.get()`), which (1) keeps one subscription per
sent task in a long-running producer and (2) makes publishing fail with a
RuntimeError ("the Celery application must be restarted") while Redis is
away. Producers here read results with plain GETs (state, meta, args), so the
subscription is dropped; everything else is the stock backend."""

from __future__ import annotations

from typing import Any

from celery.backends.redis import RedisBackend


class PublishOnlyRedisBackend(RedisBackend):
    def on_task_call(self, producer: Any, task_id: str) -> None:
        """No result subscription for the task just sent."""


def publish_only(url: str) -> str:
    """The result_backend setting selecting this class for a redis:// URL."""
    if not url.startswith(("redis://", "rediss://", "unix://")):
        return url
    return f"{__name__}:{PublishOnlyRedisBackend.__name__}+{url}"
