"""The Redis result backends of workers and producers.

`MaskingRedisBackend` (everyone): with `result_extended`, Celery stores each
task's raw args and kwargs next to its state and result
(celery/backends/base.py `_get_result_meta`). This backend stores them, and
the result, with the values under secret-looking keys masked by tracking's
masker (password, token, secret, api_key, authorization, … and
`AIWORKER_TRACKING_MASK_KEYS`), and exception messages and tracebacks
scrubbed of `key=value` secrets; every other field of the extended meta (name,
worker, retries, queue, parent, children) is kept. Unlike tracking, values are
not summarised: the stored args are a failed stage's input for the gateway's
retry and a result is the next stage's input for redelivery (orchestrator.recovery),
so they stay whole; a secret under a secret-looking key comes back as "***".

`PublishOnlyRedisBackend` (processes that publish tasks but never block on
their results: the gateway, tests' producers): Celery's Redis backend
subscribes to the result channel of every task a producer sends (for
`AsyncResult.get()`), which (1) keeps one subscription per sent task in a
long-running producer and (2) makes publishing fail with a RuntimeError ("the
Celery application must be restarted") while Redis is away. Producers here
read results with plain GETs (state, meta, args), so the subscription is
dropped."""

from __future__ import annotations

from functools import cached_property
from typing import Any

from celery import states
from celery.backends.redis import RedisBackend
from kombu.utils.encoding import ensure_bytes

from orchestrator.masking import Masker, masker_for

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


class MaskingRedisBackend(RedisBackend):
    @cached_property
    def masker(self) -> Any:
        resources = getattr(self.app, "aiworker", None)
        return masker_for(resources.settings) if resources is not None else Masker()

    def _get_result_meta(
        self, result: Any, state: str, traceback: Any, request: Any, format_date: bool = True, encode: bool = False
    ) -> dict[str, Any]:
        meta = super()._get_result_meta(result, state, traceback, request, format_date=format_date, encode=False)
        masker = self.masker
        for key in ("args", "kwargs"):
            if key in meta:
                meta[key] = masker.mask_keys(meta[key])
                if encode:  # as Celery does for the backends that want them pre-encoded
                    meta[key] = ensure_bytes(self.encode(meta[key]))
        value = meta.get("result")
        if state in states.EXCEPTION_STATES and isinstance(value, dict) and "exc_type" in value:
            meta["result"] = {**value, "exc_message": masker.scrub_all(value.get("exc_message"))}
        else:
            meta["result"] = masker.mask_keys(value)
        if isinstance(meta.get("traceback"), str):
            meta["traceback"] = masker.scrub(meta["traceback"])
        return meta


class PublishOnlyRedisBackend(MaskingRedisBackend):
    def on_task_call(self, producer: Any, task_id: str) -> None:
        """No result subscription for the task just sent."""

    def on_result_fulfilled(self, result: Any) -> None:
        """Unsubscribes only what was subscribed (by a `.get()`): an AsyncResult collected
        after Redis went away must not spend ~6 s reconnecting to unsubscribe nothing."""
        consumer = self.result_consumer
        if consumer._get_key_for_task(result.id) in consumer.subscribed_to:
            super().on_result_fulfilled(result)


def _with_backend(url: str, backend: type[RedisBackend]) -> str:
    if not url.startswith(REDIS_SCHEMES):
        return url
    return f"{__name__}:{backend.__name__}+{url}"


def masking(url: str) -> str:
    """The result_backend setting selecting MaskingRedisBackend for a redis:// URL
    (other backends are left as they are)."""
    return _with_backend(url, MaskingRedisBackend)


def publish_only(url: str) -> str:
    """The result_backend setting selecting PublishOnlyRedisBackend for a redis:// URL."""
    return _with_backend(url, PublishOnlyRedisBackend)
