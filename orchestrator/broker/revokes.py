"""Cancelling tasks so that every worker refuses them, also one started after
the cancel. Celery keeps revoked ids in each worker's memory (a broadcast
reaches the workers running now); they are also kept in Redis (a sorted set
scored by expiry) and every worker loads them when it connects, into the same
set Celery checks before it runs a task (which then reports REVOKED)."""

from __future__ import annotations

import time
from typing import Any

from celery import Celery, signals
from celery.worker import state as worker_state

from orchestrator import keys


def revoke(app: Celery, task_ids: list[str], terminate: bool = False) -> None:
    """Kept in Redis first (for workers not running yet), then broadcast."""
    if not task_ids:
        return
    settings = app.aiworker.settings
    expires = time.time() + settings.result_expires
    with app.aiworker.redis.pipeline() as pipe:
        pipe.zadd(keys.REVOKED, {task_id: expires for task_id in task_ids})
        pipe.zremrangebyscore(keys.REVOKED, "-inf", time.time())
        pipe.execute()
    app.control.revoke(task_ids, terminate=terminate, signal="SIGTERM")


def revoked_ids(app: Celery) -> list[str]:
    ids = app.aiworker.redis.zrangebyscore(keys.REVOKED, time.time(), "+inf")
    return [i.decode() if isinstance(i, bytes) else i for i in ids]


def load_into_worker(sender: Any = None, **_: Any) -> None:
    """worker_ready (also after a reconnect): this worker refuses every kept revoke."""
    app = getattr(sender, "app", None)
    if app is None or not hasattr(app, "aiworker"):
        return
    worker_state.revoked.update(revoked_ids(app))


def install(app: Celery) -> None:
    signals.worker_ready.connect(load_into_worker, weak=False, dispatch_uid="aiworker.revokes.load")
