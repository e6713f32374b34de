"""Periodic cleanup run by beat: old blobs, pipeline live hashes left without
a TTL, and whatever cleanup hooks other modules register (tracking registers
its retention of task rows)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from orchestrator import keys
from orchestrator.broker.routing import CPU_QUEUE
from orchestrator.pipelines.declarations import periodic_task
from orchestrator.pipelines.stage import StageTask

# name → fn(settings) -> removed count; tracking registers its task-row cleanup here.
CLEANUP_HOOKS: dict[str, Callable[[Any], int]] = {}


@periodic_task("tasks.maintenance.cleanup", queue=CPU_QUEUE, every=lambda settings: settings.cleanup_interval_seconds)
def cleanup(self: StageTask) -> dict[str, int]:
    settings = self.resources.settings
    removed = {"blobs": self.resources.blobs.cleanup(settings.blob_retention_hours * 3600)}
    client = self.resources.redis
    stale = 0
    for key in client.scan_iter(match=keys.pipeline_live_pattern(), count=500):
        if client.ttl(key) == -1:  # no expiry: a writer died between HSET and EXPIRE
            client.expire(key, settings.pipeline_hash_ttl)
            stale += 1
    removed["pipeline_hashes_given_ttl"] = stale
    for name, hook in CLEANUP_HOOKS.items():
        removed[name] = hook(settings)
    return removed
