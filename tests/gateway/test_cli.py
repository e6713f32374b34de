"""`aiworker`, the command line client, against the running gateway; what it
imports (HTTP and tables only); its help without a gateway."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from aiworker_local.infra import free_port
from tests.support.keys import API_KEY

AIWORKER = str(Path(sys.executable).parent / "aiworker")
SAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "samples"


def run(gateway, *args: str, key: str | None = API_KEY, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "AIWORKER_URL": gateway.url, "COLUMNS": "200"}
    env.pop("AIWORKER_API_KEY", None)
    if key:
        env["AIWORKER_API_KEY"] = key
    return subprocess.run([AIWORKER, *args], capture_output=True, text=True, env=env, timeout=timeout)


def test_submit_watch_status_and_history(gateway):
    done = run(gateway, "submit", "ai-pipeline", "--text", "The CLI submits and waits.", "--watch", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    submitted, final = lines[0], lines[-1]
    assert final["pipeline_id"] == submitted["pipeline_id"] and final["overall_state"] == "SUCCESS"
    status = run(gateway, "status", submitted["pipeline_id"])
    assert status.returncode == 0 and "stage4_post_processing" in status.stdout and "SUCCESS" in status.stdout
    result = run(gateway, "result", submitted["pipeline_id"])
    assert result.returncode == 0 and json.loads(result.stdout)["result"] == "pipeline_completed"
    # the 4 stages just run are the newest rows, whatever ran before: a page of 3 is full and has a next one
    history = run(gateway, "history", "--hours", "1", "--limit", "3", "--json")
    assert history.returncode == 0, history.stdout + history.stderr
    page = json.loads(history.stdout)
    assert len(page["items"]) == 3 and page["next_cursor"]
    assert "tasks.ai_pipeline.stage4_post_processing" in [item["task_name"] for item in page["items"]]


def test_submit_a_file_and_health_table(gateway):
    done = run(gateway, "submit", "document", str(SAMPLES / "document.pdf"), "--watch")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout
    health = run(gateway, "health")
    assert health.returncode == 0
    for part in ("parser", "embedder", "llm", "stt", "redis", "postgres", "SERVING", "cpu"):
        assert part in health.stdout


def test_errors_exit_2_with_the_message(gateway):
    no_key = run(gateway, "history", key=None)
    assert no_key.returncode == 2 and "UNAUTHENTICATED" in no_key.stdout
    missing = run(gateway, "status", "no-such-pipeline")
    assert missing.returncode == 2 and "NOT_FOUND" in missing.stdout
    bad_file = run(gateway, "submit", "resume", str(SAMPLES / "answer.txt"))
    assert bad_file.returncode == 2 and "PDF" in bad_file.stdout


# What the client must not load: the task code and the server side's libraries.
SERVER_SIDE = ("orchestrator", "celery", "sqlalchemy", "redis", "grpc", "fastapi", "torch", "svc_runtime")


def test_the_cli_imports_http_and_rich_only():
    code = "import gateway.cli, json, sys; print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    top_level = set(json.loads(loaded.stdout))
    assert {"gateway", "httpx", "rich"} <= top_level
    assert top_level.isdisjoint(SERVER_SIDE), sorted(top_level & set(SERVER_SIDE))


def test_help_needs_no_gateway():
    nowhere = SimpleNamespace(url=f"http://127.0.0.1:{free_port()}")  # nothing listens there
    shown = {args[0]: run(nowhere, *args, timeout=60) for args in (["--help"], ["submit", "--help"])}
    assert all(done.returncode == 0 for done in shown.values()), shown
    assert "pipelines" in shown["--help"].stdout and "`aiworker pipelines`" in shown["submit"].stdout


def test_pipelines_lists_the_gateways_and_submit_refuses_others(gateway):
    with gateway.client() as client:
        served = client.get("/api/v1/pipeline-types").json()["data"]
    listed = run(gateway, "pipelines", "--json")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert json.loads(listed.stdout) == served
    table = run(gateway, "pipelines")
    assert table.returncode == 0, table.stdout + table.stderr
    for entry in served:
        assert entry["slug"] in table.stdout
    assert "tasks.resume_pipeline.parse_pdf (cpu_queue)" in table.stdout and "[max_pages]" in table.stdout
    unknown = run(gateway, "submit", "no-such-pipeline", "--text", "x")
    assert unknown.returncode == 2
    assert "unknown pipeline 'no-such-pipeline'" in unknown.stdout
    assert all(entry["slug"] in unknown.stdout for entry in served)
    by_name = run(gateway, "submit", "ai_pipeline", "--text", "Named as the registry names it.", "--watch", "--json")
    assert by_name.returncode == 0, by_name.stdout + by_name.stderr
    assert json.loads(by_name.stdout.splitlines()[-1])["overall_state"] == "SUCCESS"
