"""One trace per pipeline, across processes: with an OTLP endpoint configured by
the standard variables, the gateway, both workers and the model services export
spans over OTLP/HTTP (protobuf) to a receiver of this test's own, which decodes
each ExportTraceServiceRequest. A resume pipeline submitted over REST makes one
connected trace: the HTTP request, the pipeline's span, each stage's publish and
run, the gRPC client and server calls; its id is in the status API and in the
log lines."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from aiworker_local.gateway_process import start_gateway
from aiworker_local.services import start_service
from aiworker_local.stack import make_app
from aiworker_local.workers import orchestrator_env, start_worker
from svc_parser.model import sample_pdf
from tests.support.infra import spare_redis_database
from tests.support.keys import API_KEY
from tests.tracking.rows import wait_for


class Receiver:
    """An OTLP/HTTP trace endpoint: every span it was sent, with its process's service.name."""

    def __init__(self) -> None:
        self.spans: list[dict] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = ExportTraceServiceRequest.FromString(body)
                receiver.add(request)
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def add(self, request: ExportTraceServiceRequest) -> None:
        with self.lock:
            for resource_spans in request.resource_spans:
                attrs = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                for scope in resource_spans.scope_spans:
                    for span in scope.spans:
                        self.spans.append(
                            {
                                "service": attrs.get("service.name"),
                                "name": span.name,
                                "trace_id": span.trace_id.hex(),
                                "span_id": span.span_id.hex(),
                                "parent": span.parent_span_id.hex(),
                                "attributes": {a.key: _value(a.value) for a in span.attributes},
                            }
                        )

    def trace(self, trace_id: str) -> list[dict]:
        with self.lock:
            return [s for s in self.spans if s["trace_id"] == trace_id]


def _value(value: object) -> object:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


@pytest.fixture(scope="module")
def traced(stack, redis_url, postgres_url, log_dir, tmp_path_factory) -> Iterator[tuple]:
    receiver = Receiver()
    otel = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }
    started = []
    with spare_redis_database(redis_url, 3) as broker:
        try:
            services = {}
            for kind in ("parser", "embedder"):
                services[kind] = start_service(kind, log_dir, env={**otel, "OTEL_SERVICE_NAME": f"svc-{kind}"})
                started.append(services[kind])
            env = orchestrator_env(
                broker,
                postgres_url,
                tmp_path_factory.mktemp("traced-blobs"),
                {**{k: s.address for k, s in stack.services.items()}, **{k: s.address for k, s in services.items()}},
            )
            app = make_app(env)
            for queue in ("cpu", "gpu"):
                started.append(
                    start_worker(
                        app,
                        f"{queue}_queue",
                        {**env, **otel, "OTEL_SERVICE_NAME": f"worker-{queue}"},
                        log_dir,
                        f"traced-{queue}",
                    )
                )
            gateway = start_gateway(
                {**env, **otel, "OTEL_SERVICE_NAME": "gateway"}, log_dir, API_KEY, name="gateway-traced"
            )
            started.append(gateway)
            yield receiver, gateway, started
        finally:
            for proc in started:
                proc.stop()


def test_a_pipeline_is_one_connected_trace_across_processes(traced, artifacts_dir):
    receiver, gateway, started = traced
    with gateway.client() as client:
        pdf = sample_pdf(["Traced resume. Celery, Redis and gRPC."])
        response = client.post("/api/v1/pipelines/resume", files={"file": ("cv.pdf", pdf, "application/pdf")})
        assert response.status_code == 202, response.text
        pipeline_id = response.json()["data"]["pipeline_id"]

        def finished() -> dict | None:
            data = client.get(f"/api/v1/pipelines/{pipeline_id}").json()["data"]
            return data if data["overall_state"] == "SUCCESS" else None

        status = wait_for(finished, 120, "pipeline done")
    trace_id = status["trace_id"]
    assert trace_id and len(trace_id) == 32
    wanted = {"gateway", "worker-cpu", "worker-gpu", "svc-parser", "svc-embedder"}

    def complete() -> list[dict] | None:  # every process, and every stage's run (the last one exports last)
        spans = receiver.trace(trace_id)
        stages = {s["attributes"].get("aiworker.stage_index") for s in spans if "aiworker.stage" in s["attributes"]}
        return spans if wanted <= {s["service"] for s in spans} and {0, 1, 2} <= stages else None

    spans = wait_for(complete, 30, "spans of every process and stage")
    by_id = {s["span_id"]: s for s in spans}
    roots = [s for s in spans if not s["parent"] or s["parent"] not in by_id]
    assert len(roots) == 1, [(s["service"], s["name"]) for s in roots]  # connected: one root, the request
    assert roots[0]["service"] == "gateway" and roots[0]["name"].startswith("POST ")
    assert not [s["name"] for s in spans if s["name"].startswith("GET ")]  # status reads are traces of their own
    (artifacts_dir / "trace.txt").write_text(span_tree(spans, roots[0]))  # docs/operations.md shows one
    pipeline_span = next(s for s in spans if s["name"] == "pipeline resume")
    runs = [s for s in spans if "aiworker.stage" in s["attributes"]]
    assert {s["attributes"]["aiworker.pipeline_id"] for s in runs} == {pipeline_id}
    assert {s["attributes"]["aiworker.stage_index"] for s in runs} == {0, 1, 2}
    assert {s["attributes"]["aiworker.queue"] for s in runs} == {"cpu_queue", "gpu_queue"}

    def ancestors(span: dict) -> list[str]:
        chain = []
        while span["parent"] in by_id:
            span = by_id[span["parent"]]
            chain.append(span["span_id"])
        return chain

    assert all(pipeline_span["span_id"] in ancestors(run) for run in runs)  # every stage under the submission
    store = next(s for s in runs if s["attributes"]["aiworker.stage_index"] == 2)
    assert any(store["span_id"] in ancestors(s) and s["name"].startswith("INSERT") for s in spans)  # SQL spans
    grpc_servers = [s for s in spans if s["service"] in ("svc-parser", "svc-embedder")]
    assert grpc_servers and all(s["attributes"].get("rpc.grpc.status_code") == 0 for s in grpc_servers)
    worker_log = next(p for p in started if getattr(p, "hostname", "") == "traced-cpu@test").log_path.read_text()
    assert f'"trace_id": "{trace_id}"' in worker_log  # log lines carry the trace id


def span_tree(spans: list[dict], root: dict) -> str:
    children: dict[str, list[dict]] = {}
    for span in spans:
        children.setdefault(span["parent"], []).append(span)
    lines: list[str] = []

    def walk(span: dict, depth: int) -> None:
        extra = {
            k.removeprefix("aiworker."): v
            for k, v in span["attributes"].items()
            if k in ("aiworker.stage_index", "aiworker.queue", "rpc.grpc.status_code")
        }
        lines.append(f"{'  ' * depth}{span['name']}  [{span['service']}]{'  ' + str(extra) if extra else ''}")
        for child in children.get(span["span_id"], []):
            walk(child, depth + 1)

    walk(root, 0)
    return "\n".join(lines) + "\n"
