"""One beat, enforced: every aiworker-beat runs this scheduler, and only the one
holding the beat lease (Redis, orchestrator.broker.locks) sends the schedule; the others
stay idle, checking the lease, and one of them takes over within the lease's
time when the holder dies. So beat can run as two replicas for availability and
still send each periodic task once."""

from __future__ import annotations

from typing import Any

import redis
import structlog
from celery.beat import PersistentScheduler

from orchestrator import keys
from orchestrator.broker.locks import Lease

log = structlog.get_logger(__name__)


class LeasedScheduler(PersistentScheduler):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = self.app.aiworker.settings
        client = redis.Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
        self.lease = Lease(client, keys.BEAT_LOCK, settings.beat_lock_seconds)
        self.check_every = settings.beat_lock_seconds / 3  # renewed well before it expires
        self.active: bool | None = None  # unknown until the first tick logs which it is

    def tick(self, *args: Any, **kwargs: Any) -> float:
        # Nothing here may raise: an exception out of tick() ends the beat process, and
        # with it the lost-stage sweep that must run once Redis is back.
        try:
            holding = self.lease.hold()
            holder = None if holding else self.lease.holder()
        except redis.RedisError as exc:  # no Redis, nothing to send to either
            log.warning("beat_lock_unreachable", error=str(exc))
            holding, holder = False, None
        if holding != self.active:
            self.active = holding
            log.info("beat_active" if holding else "beat_standby", holder=holder)
        if not holding:
            return self.check_every
        return min(super().tick(*args, **kwargs), self.check_every)

    def close(self) -> None:
        try:
            if self.active:
                self.lease.release()  # a standby takes over at once, not after the lease expires
        except redis.RedisError:
            pass
        super().close()
