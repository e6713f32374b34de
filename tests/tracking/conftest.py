"""Fixtures of the tracking tests: a fresh migrated database per module, and
helpers to wait for rows. Redis is the session's (AIWORKER_TEST_REDIS_DB);
every test uses its own outbox stream name, so workers of other tests sharing
that database never drain it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from orchestrator.settings import OrchestratorSettings
from orchestrator.storage.db import upgrade
from tests.support.infra import database_beside


@pytest.fixture(scope="module")
def fresh_db(postgres_url: str) -> Iterator[str]:
    """A database of this module's own (exact counts in metrics), at head."""
    with database_beside(postgres_url) as url:
        upgrade(url)
        yield url


@pytest.fixture
def rclient(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def tracking_settings(redis_url: str, fresh_db: str, tmp_path: Path) -> OrchestratorSettings:
    """Settings with a private outbox stream and spool folder."""
    return OrchestratorSettings(
        broker_url=redis_url,
        database_url=fresh_db,
        tracking_outbox=f"test:tracking:{uuid.uuid4().hex[:12]}",
        tracking_spool_dir=tmp_path / "spool",
        tracking_claim_idle_seconds=1,
        tracking_batch_size=50,
    )
