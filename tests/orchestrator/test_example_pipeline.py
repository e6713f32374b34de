"""Adding a pipeline is its task module and one registry entry: a pipeline from
outside the product (tests/orchestrator/example_pipeline.py), loaded by
AIWORKER_PIPELINE_MODULES, runs on both queues through a worker, is submitted
through the gateway's generic route and the CLI (which learns it from the
gateway: the variable is set on the server only), and reads back like any other:
status, result, history."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from aiworker_local.gateway_process import start_gateway
from aiworker_local.workers import start_worker
from tests.support.infra import spare_redis_database
from tests.support.keys import API_KEY

PLUGIN = "tests.orchestrator.example_pipeline"
CLI = Path(sys.executable).parent / "aiworker"
ROOT = Path(__file__).resolve().parents[2]
# A team's pipeline package would be installed; this one is importable from the checkout.
PLUGIN_ENV = {"AIWORKER_PIPELINE_MODULES": PLUGIN, "PYTHONPATH": str(ROOT)}


@pytest.fixture(scope="module")
def plugin_stack(stack, redis_url, log_dir):
    """A worker (both queues) and a gateway that load the example pipeline, on a broker of
    their own (the session's workers do not know its tasks), with the session's services."""
    with spare_redis_database(redis_url, 2) as broker:
        env = {**stack.env, "AIWORKER_BROKER_URL": broker, **PLUGIN_ENV}
        from aiworker_local.stack import make_app

        # This process only pings the worker: it must not import the plugin, whose tasks
        # would stay in the registry for the rest of the session.
        app = make_app({**stack.env, "AIWORKER_BROKER_URL": broker})
        worker = start_worker(app, "cpu_queue,gpu_queue", env, log_dir, "plugin")
        gateway = start_gateway(env, log_dir, API_KEY, name="gateway-plugin")
        try:
            yield gateway
        finally:
            gateway.stop()
            worker.stop()


def cli(gateway, *args: str) -> subprocess.CompletedProcess:
    """The CLI with no AIWORKER_PIPELINE_MODULES: what it knows of the plugin, it has from the gateway."""
    env = {"AIWORKER_URL": gateway.url, "AIWORKER_API_KEY": API_KEY, "PATH": "/usr/bin:/bin", "COLUMNS": "200"}
    env["PYTHONPATH"] = str(ROOT)  # this checkout's CLI, not for the plugin: the CLI never imports pipelines
    return subprocess.run([str(CLI), *args], capture_output=True, text=True, timeout=120, env=env)


def test_a_registered_pipeline_runs_through_the_generic_route(plugin_stack):
    with plugin_stack.client() as client:
        submitted = client.post("/api/v1/pipelines/word-stats", json={"text": "queues carry extraordinary work"})
        assert submitted.status_code == 202, submitted.text
        pipeline_id = submitted.json()["data"]["pipeline_id"]
        assert submitted.json()["data"]["estimated_duration"] == 2  # its declared default: no history yet
        done = cli(plugin_stack, "watch", pipeline_id, "--json")
        assert done.returncode == 0, done.stdout + done.stderr
        status = client.get(f"/api/v1/pipelines/{pipeline_id}").json()["data"]
        assert status["pipeline"] == "word_stats" and status["overall_state"] == "SUCCESS"
        assert [(t["task_name"], t["queue"]) for t in status["tasks"]] == [
            ("tasks.word_stats.split", "cpu_queue"),
            ("tasks.word_stats.embed_longest", "gpu_queue"),
        ]
        result = client.get(f"/api/v1/pipelines/{pipeline_id}/result").json()["data"]
        assert result["result"] == {"count": 4, "longest": "extraordinary", "dimension": 384}
        bad = client.post("/api/v1/pipelines/word-stats", json={"text": ""})
        assert bad.status_code == 422 and "text" in bad.json()["error"]["message"]
        docs = client.get("/openapi.json").json()
        variants = docs["paths"]["/api/v1/pipelines/{name}"]["post"]["requestBody"]["content"]["application/json"]
        assert "word_stats" in [v["title"] for v in variants["schema"]["oneOf"]]


def test_the_cli_lists_and_submits_a_pipeline_registered_on_the_server_only(plugin_stack):
    listed = cli(plugin_stack, "pipelines", "--json")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    word_stats = next(t for t in json.loads(listed.stdout) if t["slug"] == "word-stats")
    assert [(s["task_name"], s["queue"]) for s in word_stats["stages"]] == [
        ("tasks.word_stats.split", "cpu_queue"),
        ("tasks.word_stats.embed_longest", "gpu_queue"),
    ]
    assert word_stats["files"] == [] and word_stats["input_schema"]["required"] == ["text"]
    table = cli(plugin_stack, "pipelines")
    assert "word-stats" in table.stdout and "text → words → the longest, embedded" in table.stdout
    run = cli(plugin_stack, "submit", "word-stats", "--set", "text=one three", "--watch", "--json")
    assert run.returncode == 0, run.stdout + run.stderr
    final = json.loads(run.stdout.strip().splitlines()[-1])
    assert final["overall_state"] == "SUCCESS"
    result = cli(plugin_stack, "result", final["pipeline_id"])
    assert result.returncode == 0 and json.loads(result.stdout)["longest"] == "three"
