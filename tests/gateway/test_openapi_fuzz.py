"""schemathesis (its CLI, as CI users run it) against the gateway's own OpenAPI:
no request it generates gets a 5xx, and every status it gets is one the spec
declares for that operation.

It runs against a gateway of its own whose broker is a Redis database no
worker reads: the submissions it generates queue up and load nothing. Excluded:
readiness (503 by design: no services here) and the SSE stream, which lasts as
long as its pipeline (tests/gateway/test_rest.py covers it). The operations that
call a model service directly (search, the OpenAI endpoints) answer their
declared 503 here, the one server error they are allowed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from aiworker_local.gateway_process import start_gateway
from orchestrator.storage.db import upgrade
from tests.support.infra import spare_redis_database
from tests.support.keys import API_KEY

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"


@pytest.fixture(scope="module")
def fuzz_gateway(redis_url, postgres_url, log_dir, tmp_path_factory):
    upgrade(postgres_url)
    with spare_redis_database(redis_url, 1) as idle:  # its own, flushed after: what it queued goes
        env = {
            "AIWORKER_BROKER_URL": idle,
            "AIWORKER_DATABASE_URL": postgres_url,
            "AIWORKER_BLOB_URL": str(tmp_path_factory.mktemp("fuzz-blobs")),
        }
        gateway = start_gateway(env, log_dir, API_KEY, name="gateway-fuzz")
        yield gateway
        gateway.stop()


# Operations that call a model service themselves: none runs beside this gateway.
CALLS_A_SERVICE = r"^/v1/(embeddings|chat/completions|audio/transcriptions)$|^/api/v1/search$"
CONFIG = f"""
[[operations]]
include-path-regex = '{CALLS_A_SERVICE}'
checks.not_a_server_error.expected-statuses = ["2xx", "3xx", "4xx", "503"]
"""


def test_no_server_errors(fuzz_gateway, artifacts_dir, tmp_path):
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    result = subprocess.run(
        [
            str(SCHEMATHESIS),
            "--config-file",
            str(config),
            "run",
            f"{fuzz_gateway.url}/openapi.json",
            "--wait-for-schema",
            "30",
            "--checks",
            "not_a_server_error,status_code_conformance",
            "--header",
            f"Authorization: Bearer {API_KEY}",
            "--max-examples",
            "25",
            "--seed",
            "20261121",
            "--request-timeout",
            "30",
            "--exclude-path",
            "/readyz",
            "--exclude-path",
            "/health/{part}",
            "--exclude-path",
            "/api/v1/pipelines/{pipeline_id}/events",
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
    )
    (artifacts_dir / "schemathesis.txt").write_text(result.stdout + result.stderr)
    assert result.returncode == 0, result.stdout[-4000:]
    counts = re.search(r"(\d+) generated, (\d+) passed", result.stdout)
    assert counts and int(counts.group(1)) >= 200 and counts.group(1) == counts.group(2), result.stdout[-2000:]
