"""The gateway in-process (FastAPI's TestClient, no gRPC listener, no workers) on a
Redis database and the PostgreSQL of the session: what needs no running pipeline
(authentication, body limits, /metrics access, the error table, submission and a
status read) at the speed of the edit loop. The whole path through a real gateway
process and real workers is tests/gateway/test_rest.py and its neighbours."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from gateway.app import create_app
from gateway.rest.deps import pipelines
from gateway.settings import GatewaySettings
from orchestrator.settings import OrchestratorSettings
from orchestrator.storage.db import upgrade
from orchestrator.tracking import states
from svc_runtime.errors import FailedPrecondition, Gone, InvalidArgument, NotFound, Unavailable
from tests.support.infra import spare_redis_database
from tests.support.keys import API_KEY

KEY = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture(scope="module")
def broker(redis_url) -> Iterator[str]:
    with spare_redis_database(redis_url, 1) as url:
        yield url


@pytest.fixture(scope="module")
def orchestrator(broker, postgres_url, tmp_path_factory) -> OrchestratorSettings:
    upgrade(postgres_url)
    return OrchestratorSettings(
        broker_url=broker, database_url=postgres_url, blob_url=str(tmp_path_factory.mktemp("blobs"))
    )


def client_of(orchestrator: OrchestratorSettings, **gateway: object) -> TestClient:
    settings = GatewaySettings(api_keys=[API_KEY], grpc_port=0, log_format="json", **gateway)
    return TestClient(create_app(settings, orchestrator, serve_grpc=False))


@pytest.fixture(scope="module")
def client(orchestrator) -> Iterator[TestClient]:
    with client_of(orchestrator) as c:
        yield c


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"X-API-Key": "wrong"}, {"Authorization": API_KEY}]
)
def test_every_api_route_needs_a_valid_key(client, headers):
    for path in ("/api/v1/pipelines", "/api/v1/states", "/api/v1/pipeline-types", "/api/v1/tasks/history"):
        response = client.get(path, headers=headers)
        assert response.status_code == 401, path
        assert response.json()["error"]["code"] == "UNAUTHENTICATED"


def test_bearer_and_x_api_key_are_accepted_and_health_and_docs_stay_open(client):
    assert client.get("/api/v1/pipelines", headers={"X-API-Key": API_KEY}).status_code == 200
    assert client.get("/api/v1/pipelines", headers=KEY).status_code == 200
    for open_path in ("/healthz", "/openapi.json", "/docs", "/dashboard/"):
        assert client.get(open_path).status_code == 200, open_path


def test_auth_can_be_switched_off(orchestrator):
    with client_of(orchestrator, auth_enabled=False) as open_client:
        assert open_client.get("/api/v1/pipelines").status_code == 200


def test_prometheus_metrics_need_the_key_unless_metrics_public(client, orchestrator):
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=KEY).status_code == 200
    with client_of(orchestrator, metrics_public=True) as public:
        scraped = public.get("/metrics")  # what a Prometheus scrape sends: no key
        assert scraped.status_code == 200 and "aiworker_http_requests_total" in scraped.text
        assert scraped.headers["content-type"].startswith("text/plain")
        assert public.get("/api/v1/metrics/summary").status_code == 401  # only /metrics opens
        assert public.get("/api/v1/pipelines").status_code == 401


def test_an_upload_over_the_limit_is_refused_and_a_far_larger_body_before_the_key_check(orchestrator):
    with client_of(orchestrator, max_upload_bytes=1000) as small:
        response = small.post(
            "/api/v1/pipelines/resume",
            headers=KEY,
            files={"file": ("big.pdf", b"%PDF-1.4\n" + b"0" * 5000, "application/pdf")},
        )
        assert response.status_code == 413 and "limit" in response.json()["error"]["message"]
        assert response.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
        response = small.post(
            "/api/v1/pipelines/resume", files={"file": ("huge.pdf", b"%PDF-1.4\n" + b"0" * 200_000, "application/pdf")}
        )
        assert response.status_code == 413, response.text
        assert response.json()["error"]["message"].startswith("request body of ")


def test_a_submission_is_queued_and_its_status_read_back(client):
    response = client.post("/api/v1/pipelines/ai-pipeline", headers=KEY, json={"text": "Queued, never run here."})
    assert response.status_code == 202, response.text
    submitted = response.json()["data"]
    status = client.get(f"/api/v1/pipelines/{submitted['pipeline_id']}", headers=KEY)
    assert status.status_code == 200, status.text
    assert status.json()["data"]["overall_state"] == states.PENDING  # no worker consumes this database


def test_the_vocabulary_and_the_pipeline_types_are_served(client):
    served = client.get("/api/v1/states", headers=KEY).json()["data"]
    assert set(served["pipeline_terminal"]) == set(states.PIPELINE_TERMINAL)
    types = {t["slug"] for t in client.get("/api/v1/pipeline-types", headers=KEY).json()["data"]}
    assert {"resume", "ai-pipeline", "document", "interview-answer"} <= types


class _Failing:
    """A pipeline gateway whose every call raises `error`: the error table, route by route."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def __getattr__(self, name: str):
        async def fail(*args, **kwargs):
            raise self.error

        return fail


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (InvalidArgument("bad"), 400, "INVALID_ARGUMENT"),
        (NotFound("no such pipeline"), 404, "NOT_FOUND"),
        (Gone("result expired"), 410, "GONE"),
        (FailedPrecondition("not finished"), 409, "FAILED_PRECONDITION"),
        (Unavailable("broker unreachable"), 503, "UNAVAILABLE"),
    ],
)
def test_domain_errors_become_their_http_status_with_the_message(client, error, status, code):
    client.app.dependency_overrides[pipelines] = lambda: _Failing(error)
    try:
        for path in ("/api/v1/pipelines/some-id", "/api/v1/pipelines/some-id/result"):
            response = client.get(path, headers=KEY)
            assert response.status_code == status, (path, response.text)
            assert response.json() == {"success": False, "error": {"code": code, "message": error.message}}
    finally:
        client.app.dependency_overrides.clear()
