"""`aiworker`, the command line client, against the running gateway."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

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
