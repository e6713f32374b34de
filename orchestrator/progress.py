"""Live progress of a pipeline (seed 001): a Redis hash per pipeline
{stage, status, progress, message} with a TTL, next to Celery's own PROGRESS
state of the running task."""

from __future__ import annotations

import time
from typing import Any

import redis

PIPELINE_KEY = "aiworker:pipeline:{pipeline_id}"


def pipeline_key(pipeline_id: str) -> str:
    return PIPELINE_KEY.format(pipeline_id=pipeline_id)


def write_pipeline_progress(client: redis.Redis, pipeline_id: str, ttl: int, **fields: Any) -> None:
    key = pipeline_key(pipeline_id)
    mapping = {k: str(v) for k, v in fields.items() if v is not None}
    mapping["updated_at"] = f"{time.time():.3f}"
    with client.pipeline() as pipe:
        pipe.hset(key, mapping=mapping)
        pipe.expire(key, ttl)
        pipe.execute()


def read_pipeline_progress(client: redis.Redis, pipeline_id: str) -> dict[str, str]:
    raw = client.hgetall(pipeline_key(pipeline_id))
    return {k.decode() if isinstance(k, bytes) else k: v.decode() if isinstance(v, bytes) else v
            for k, v in raw.items()}
