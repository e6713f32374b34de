"""Periodic work run by beat: cleanup (old blobs; pipeline progress hashes
left without a TTL; whatever cleanup hooks other modules register, e.g.
tracking), and re-sending stages the broker lost (orchestrator.recovery)."""

from __future__ import annotations

from typing import Any, Callable

from celery import shared_task

from orchestrator.progress import PIPELINE_KEY
from orchestrator.stage import StageTask

# name → fn(settings) -> removed count; tracking registers its task-row cleanup here.
CLEANUP_HOOKS: dict[str, Callable[[Any], int]] = {}


@shared_task(bind=True, base=StageTask, name="tasks.maintenance.cleanup")
def cleanup(self: StageTask) -> dict[str, int]:
    settings = self.resources.settings
    removed = {"blobs": self.resources.blobs.cleanup(settings.blob_retention_hours * 3600)}
    client = self.resources.redis
    stale = 0
    for key in client.scan_iter(match=PIPELINE_KEY.format(pipeline_id="*"), count=500):
        if client.ttl(key) == -1:  # no expiry: a writer died between HSET and EXPIRE
            client.expire(key, settings.pipeline_hash_ttl)
            stale += 1
    removed["pipeline_hashes_given_ttl"] = stale
    for name, hook in CLEANUP_HOOKS.items():
        removed[name] = hook(settings)
    return removed


@shared_task(bind=True, name="tasks.maintenance.redeliver_lost")
def redeliver_lost(self: Any) -> dict[str, Any]:
    if not self.app.aiworker.settings.tracking_enabled:  # nothing to tell a lost stage by
        return {"found": 0, "redelivered": [], "input_gone": 0}
    from orchestrator.recovery import redeliver_lost as sweep

    return sweep(self.app)
