"""Periodic cleanup run by beat: old blobs; pipeline progress hashes left
without a TTL; and whatever cleanup hooks other modules register (tracking)."""

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
