"""estimated_duration before any history: AIWORKER_GATEWAY_DEFAULT_ESTIMATE_SECONDS
when set, else each pipeline's own stated default; the tracked means once every
stage has history. Against real PostgreSQL databases (one fresh and migrated,
one unreachable) and the session's, through the gateway's own service object."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
import sqlalchemy
from sqlalchemy.engine import make_url

from aiworker_local.infra import free_port
from gateway.service import PipelineGateway
from gateway.settings import GatewaySettings
from orchestrator.assembly import registry_queries
from orchestrator.pipelines.registry import PIPELINES
from orchestrator.settings import OrchestratorSettings
from orchestrator.storage.db import upgrade
from tests.gateway.test_rest import wait_done


@pytest.fixture(scope="module")
def empty_database(postgres_url):
    """A migrated database on the session's server that no task ever ran against."""
    url = make_url(postgres_url)
    name = f"aiworker_estimate_{uuid.uuid4().hex[:8]}"
    admin = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    fresh = url.set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(fresh)
        yield fresh
    finally:
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def estimate(stack, database_url: str, name: str, **gateway_settings) -> float:
    settings = OrchestratorSettings(broker_url=stack.settings.broker_url, database_url=database_url)
    service = PipelineGateway(GatewaySettings(**gateway_settings), stack.app, registry_queries(settings))
    try:
        return asyncio.run(service.estimate(name))
    finally:
        service.queries.engine.dispose()


def test_no_history_uses_the_setting_else_each_pipelines_default(stack, empty_database):
    for name, spec in PIPELINES.items():
        assert estimate(stack, empty_database, name) == spec.default_seconds
        assert estimate(stack, empty_database, name, default_estimate_seconds=42.5) == 42.5


def test_tracking_unreachable_uses_the_same_fallback(stack):
    closed = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nowhere?connect_timeout=2"
    assert estimate(stack, closed, "resume", default_estimate_seconds=7) == 7
    assert estimate(stack, closed, "resume") == PIPELINES["resume"].default_seconds


def test_with_history_the_setting_is_not_used(stack, client):
    """Once every stage has run, the estimate is the sum of their tracked means."""
    submitted = client.post("/api/v1/tasks/ai-pipeline", json={"text": "Estimate me.", "options": {"task": "keywords"}})
    assert submitted.status_code == 202, submitted.text
    assert wait_done(client, submitted.json()["data"]["pipeline_id"])["overall_state"] == "SUCCESS"
    queries = registry_queries(stack.settings)
    deadline = time.monotonic() + 30  # the last stage's SUCCESS is live first, in PostgreSQL once drained
    while None in (means := queries.mean_stage_seconds("ai_pipeline")).values() and time.monotonic() < deadline:
        time.sleep(0.2)
    value = estimate(stack, stack.settings.database_url, "ai_pipeline", default_estimate_seconds=4242)
    assert value == pytest.approx(sum(means.values()), abs=0.01) and value != 4242
