"""Live progress of a pipeline (docs/decisions/0012-live-pipeline-progress.md): fields {stage, status, progress,
message, ...} of the pipeline's live hash (orchestrator.keys) with a TTL, next
to Celery's own PROGRESS state of the running task."""

from __future__ import annotations

import time
from typing import Any

import redis

from orchestrator import keys

TASK_FIELD_PREFIX = "t:"  # tracking's task entries in the same hash (orchestrator.tracking.recording.outbox)


def write_pipeline_progress(client: redis.Redis, pipeline_id: str, ttl: int, **fields: Any) -> None:
    key = keys.pipeline_live(pipeline_id)
    mapping = {k: str(v) for k, v in fields.items() if v is not None}
    mapping["updated_at"] = f"{time.time():.3f}"
    with client.pipeline() as pipe:
        pipe.hset(key, mapping=mapping)
        pipe.expire(key, ttl)
        pipe.execute()


def read_pipeline_progress(client: redis.Redis, pipeline_id: str) -> dict[str, str]:
    """The progress fields of the pipeline's live hash (tracking keeps its tasks' live
    states in the same hash, under `t:<task_id>`: left out here)."""
    raw = client.hgetall(keys.pipeline_live(pipeline_id))
    fields = {
        k.decode() if isinstance(k, bytes) else k: v.decode() if isinstance(v, bytes) else v for k, v in raw.items()
    }
    return {k: v for k, v in fields.items() if not k.startswith(TASK_FIELD_PREFIX)}
