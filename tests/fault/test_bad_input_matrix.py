"""Bad input across every surface, on the session's whole back end: REST, the
gateway's gRPC API, and each model service directly. Every case gets a 4xx or
INVALID_ARGUMENT whose message says what is wrong; input the gateway cannot
judge (a broken PDF with a PDF header, bytes that are not audio) fails its
pipeline at the first stage with the service's message and no retries; and
afterwards no process has crashed and everything is still ready."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import struct_pb2

from aiworker.embedder.v1 import embedder_pb2, embedder_pb2_grpc
from aiworker.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from aiworker.llm.v1 import llm_pb2, llm_pb2_grpc
from aiworker.parser.v1 import parser_pb2, parser_pb2_grpc
from aiworker.stt.v1 import stt_pb2, stt_pb2_grpc
from svc_parser.model import sample_pdf
from tests.parser.pdfs import encrypted_pdf, image_only_pdf
from tests.support.keys import API_KEY
from tests.tracking.rows import wait_for, wait_statuses

AUTH = (("authorization", f"Bearer {API_KEY}"),)
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
NOT_AUDIO = b"RIFF\x24\x00\x00\x00WAVEjunk" + bytes(range(256)) * 8
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def client(gateway):
    with gateway.client() as http:
        yield http


@pytest.fixture(scope="module")
def pids(stack, gateway) -> dict[str, int]:
    """Every process's pid before the matrix: the same ones must be alive after it."""
    procs = {f"svc-{k}": s.process for k, s in stack.services.items()}
    procs.update({f"worker-{k}": w for k, w in stack.workers.items()})
    procs["gateway"] = gateway.process
    return {name: proc.pid for name, proc in procs.items()}


def ai(body: Any) -> dict[str, Any]:
    return (
        {"json": body}
        if not isinstance(body, (str, bytes))
        else {"content": body, "headers": {"content-type": "application/json"}}
    )


def upload(name: str, data: bytes, content_type: str, **form: str) -> dict[str, Any]:
    return {"files": {"file": (name, data, content_type)}, "data": form}


# -- REST: refused at once ------------------------------------------------------------------
REST_REFUSED = [
    # (id, method, path, request kwargs, status, words the message must contain)
    ("json-truncated", "post", "/api/v1/tasks/ai-pipeline", ai('{"text": "unterminated'), 422, "JSON"),
    ("json-not-an-object", "post", "/api/v1/tasks/ai-pipeline", ai("[1, 2, 3]"), 422, "body"),
    ("text-wrong-type", "post", "/api/v1/tasks/ai-pipeline", ai({"text": 12345}), 422, "text"),
    ("text-missing", "post", "/api/v1/tasks/ai-pipeline", ai({"options": {}}), 422, "text"),
    ("text-empty", "post", "/api/v1/tasks/ai-pipeline", ai({"text": ""}), 422, "text"),
    ("text-too-long", "post", "/api/v1/tasks/ai-pipeline", ai({"text": "x" * 200_001}), 422, "text"),
    ("text-lone-surrogate", "post", "/api/v1/tasks/ai-pipeline", ai('{"text": "broken \\ud800 pair"}'), 422, "unicode"),
    ("text-nul-only", "post", "/api/v1/tasks/ai-pipeline", ai({"text": "\u0000\u0000"}), 422, "empty"),
    ("text-invisible-only", "post", "/api/v1/tasks/ai-pipeline", ai({"text": "\u200b\u200b\u2060 \n"}), 422, "empty"),
    (
        "options-task-unknown",
        "post",
        "/api/v1/tasks/ai-pipeline",
        ai({"text": "hi", "options": {"task": "dance"}}),
        422,
        "task",
    ),
    ("options-wrong-type", "post", "/api/v1/tasks/ai-pipeline", ai({"text": "hi", "options": "fast"}), 422, "options"),
    ("priority-out-of-range", "post", "/api/v1/tasks/ai-pipeline", ai({"text": "hi", "priority": 42}), 422, "priority"),
    (
        "priority-wrong-type",
        "post",
        "/api/v1/tasks/ai-pipeline",
        ai({"text": "hi", "priority": "high"}),
        422,
        "priority",
    ),
    ("resume-no-file", "post", "/api/v1/pipelines/resume", {"data": {"priority": "5"}}, 422, "file"),
    ("resume-empty", "post", "/api/v1/pipelines/resume", upload("cv.pdf", b"", "application/pdf"), 400, "empty"),
    (
        "resume-png-named-pdf",
        "post",
        "/api/v1/pipelines/resume",
        upload("cv.pdf", PNG, "application/pdf"),
        400,
        "not a PDF",
    ),
    (
        "resume-html-type",
        "post",
        "/api/v1/pipelines/resume",
        upload("cv.html", b"<html>", "text/html"),
        400,
        "content type",
    ),
    (
        "resume-over-limit",
        "post",
        "/api/v1/pipelines/resume",
        upload("big.pdf", b"%PDF-1.4\n" + b"0" * (32 * MiB + 1), "application/pdf"),
        413,
        "limit",
    ),
    (
        "document-not-utf8",
        "post",
        "/api/v1/pipelines/document",
        upload("notes.txt", b"caf\xe9 \xff", "text/plain"),
        400,
        "UTF-8",
    ),
    (
        "document-image-type",
        "post",
        "/api/v1/pipelines/document",
        upload("a.png", PNG, "image/png"),
        400,
        "unsupported",
    ),
    (
        "answer-image-type",
        "post",
        "/api/v1/pipelines/interview-answer",
        upload("a.png", PNG, "image/png"),
        400,
        "audio",
    ),
    ("answer-empty", "post", "/api/v1/pipelines/interview-answer", upload("a.wav", b"", "audio/wav"), 400, "empty"),
    (
        "answer-resume-id-too-long",
        "post",
        "/api/v1/pipelines/interview-answer",
        upload("a.wav", NOT_AUDIO, "audio/wav", resume_id="r" * 65),
        422,
        "resume_id",
    ),
    (
        "status-unknown-id",
        "get",
        "/api/v1/tasks/ai-pipeline/3f1e0b1c-0000-4000-8000-000000000000/status",
        {},
        404,
        "not found",
    ),
    ("status-path-like-id", "get", "/api/v1/pipelines/..%2F..%2Fetc%2Fpasswd", {}, 404, "not found"),
    ("cancel-unknown-id", "post", "/api/v1/pipelines/no-such-pipeline/cancel", {}, 404, "not found"),
    ("retry-unknown-id", "post", "/api/v1/pipelines/no-such-pipeline/retry", {}, 404, "not found"),
    ("history-negative-hours", "get", "/api/v1/tasks/history", {"params": {"hours": -1}}, 422, "hours"),
    ("history-limit-zero", "get", "/api/v1/tasks/history", {"params": {"limit": 0}}, 422, "limit"),
    ("history-bad-cursor", "get", "/api/v1/tasks/history", {"params": {"cursor": "../../x"}}, 400, "cursor"),
    ("history-unknown-status", "get", "/api/v1/tasks/history", {"params": {"status": "DONE"}}, 422, "status"),
    (
        "metrics-window-negative",
        "get",
        "/api/v1/metrics/summary",
        {"params": {"window_hours": -5}},
        422,
        "window_hours",
    ),
]


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "needle"), [pytest.param(*case[1:], id=case[0]) for case in REST_REFUSED]
)
def test_rest_refuses_with_a_clear_message(client: httpx.Client, pids, method, path, kwargs, status, needle):
    response = client.request(method, path, **kwargs)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] in ("INVALID_ARGUMENT", "NOT_FOUND", "PAYLOAD_TOO_LARGE", "RESOURCE_EXHAUSTED"), error
    described = json.dumps(error)
    assert needle.lower() in described.lower(), f"{needle!r} not in {described}"


# -- gRPC gateway: refused at once ----------------------------------------------------------
def struct(**values: Any) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    out.update(values)
    return out


GRPC_REFUSED: list[tuple[str, Callable[[Any], Any], grpc.StatusCode, str]] = [
    (
        "unknown-pipeline",
        lambda s: s.SubmitPipeline(gateway_pb2.SubmitPipelineRequest(pipeline="nope"), metadata=AUTH),
        grpc.StatusCode.INVALID_ARGUMENT,
        "unknown pipeline",
    ),
    (
        "text-wrong-type",
        lambda s: s.SubmitPipeline(
            gateway_pb2.SubmitPipelineRequest(pipeline="ai_pipeline", input=struct(text=42)), metadata=AUTH
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "text",
    ),
    (
        "file-in-wrong-field",
        lambda s: s.SubmitPipeline(
            gateway_pb2.SubmitPipelineRequest(
                pipeline="resume", files=[gateway_pb2.UploadedFile(field="audio", filename="a.wav", data=NOT_AUDIO)]
            ),
            metadata=AUTH,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "file",
    ),
    (
        "pdf-that-is-png",
        lambda s: s.SubmitPipeline(
            gateway_pb2.SubmitPipelineRequest(
                pipeline="resume", files=[gateway_pb2.UploadedFile(field="pdf", filename="cv.pdf", data=PNG)]
            ),
            metadata=AUTH,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "not a PDF",
    ),
    (
        "priority-out-of-range",
        lambda s: s.SubmitPipeline(
            gateway_pb2.SubmitPipelineRequest(pipeline="ai_pipeline", input=struct(text="hi"), priority=77),
            metadata=AUTH,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "priority",
    ),
    (
        "status-unknown-id",
        lambda s: s.GetPipelineStatus(gateway_pb2.GetPipelineStatusRequest(pipeline_id="nope"), metadata=AUTH),
        grpc.StatusCode.NOT_FOUND,
        "not found",
    ),
    (
        "watch-unknown-id",
        lambda s: list(s.WatchPipeline(gateway_pb2.WatchPipelineRequest(pipeline_id="nope"), metadata=AUTH)),
        grpc.StatusCode.NOT_FOUND,
        "not found",
    ),
    (
        "list-unknown-status",
        lambda s: s.ListTasks(gateway_pb2.ListTasksRequest(hours=1, status="DONE"), metadata=AUTH),
        grpc.StatusCode.INVALID_ARGUMENT,
        "status",
    ),
    (
        "list-negative-hours",
        lambda s: s.ListTasks(gateway_pb2.ListTasksRequest(hours=-3), metadata=AUTH),
        grpc.StatusCode.INVALID_ARGUMENT,
        "hours",
    ),
    (
        "metrics-negative-window",
        lambda s: s.GetMetrics(gateway_pb2.GetMetricsRequest(window_hours=-1), metadata=AUTH),
        grpc.StatusCode.INVALID_ARGUMENT,
        "window",
    ),
]


@pytest.fixture(scope="module")
def gateway_stub(gateway):
    with grpc.insecure_channel(gateway.grpc_address) as channel:
        yield gateway_pb2_grpc.GatewayStub(channel)


@pytest.mark.parametrize(("call", "code", "needle"), [pytest.param(*c[1:], id=c[0]) for c in GRPC_REFUSED])
def test_gateway_grpc_refuses_with_a_clear_message(gateway_stub, pids, call, code, needle):
    with pytest.raises(grpc.RpcError) as caught:
        call(gateway_stub)
    assert caught.value.code() == code, caught.value.details()
    assert needle.lower() in (caught.value.details() or "").lower()


# -- model services: INVALID_ARGUMENT -------------------------------------------------------
SERVICE_REFUSED = [
    (
        "parser",
        "parser-empty",
        lambda c: parser_pb2_grpc.ParserStub(c).ParsePdf(parser_pb2.ParsePdfRequest(pdf=b"")),
        "empty",
    ),
    (
        "parser",
        "parser-not-pdf",
        lambda c: parser_pb2_grpc.ParserStub(c).ParsePdf(parser_pb2.ParsePdfRequest(pdf=PNG)),
        "not a PDF",
    ),
    (
        "parser",
        "parser-encrypted",
        lambda c: parser_pb2_grpc.ParserStub(c).ParsePdf(parser_pb2.ParsePdfRequest(pdf=encrypted_pdf())),
        "password",
    ),
    (
        "parser",
        "parser-truncated",
        lambda c: parser_pb2_grpc.ParserStub(c).ParsePdf(parser_pb2.ParsePdfRequest(pdf=sample_pdf(["cut off"])[:200])),
        "PDF",
    ),
    (
        "embedder",
        "embedder-no-texts",
        lambda c: embedder_pb2_grpc.EmbedderStub(c).Embed(embedder_pb2.EmbedRequest(texts=[])),
        "texts",
    ),
    (
        "embedder",
        "embedder-empty-text",
        lambda c: embedder_pb2_grpc.EmbedderStub(c).Embed(embedder_pb2.EmbedRequest(texts=["fine", ""])),
        "empty",
    ),
    (
        "llm",
        "llm-unknown-role",
        lambda c: llm_pb2_grpc.LlmStub(c).Generate(
            llm_pb2.GenerateRequest(messages=[llm_pb2.ChatMessage(role="wizard", content="hi")])
        ),
        "role",
    ),
    (
        "llm",
        "llm-negative-temperature",
        lambda c: llm_pb2_grpc.LlmStub(c).Generate(
            llm_pb2.GenerateRequest(messages=[llm_pb2.ChatMessage(role="user", content="hi")], temperature=-1)
        ),
        "temperature",
    ),
    (
        "stt",
        "stt-not-audio",
        lambda c: stt_pb2_grpc.SttStub(c).Recognize(stt_pb2.RecognizeRequest(audio=NOT_AUDIO)),
        "audio",
    ),
    ("stt", "stt-empty", lambda c: stt_pb2_grpc.SttStub(c).Recognize(stt_pb2.RecognizeRequest(audio=b"")), "empty"),
    (
        "stt",
        "stt-stream-not-audio",
        lambda c: list(stt_pb2_grpc.SttStub(c).RecognizeStream(stt_pb2.RecognizeRequest(audio=NOT_AUDIO))),
        "audio",
    ),
    (
        "parser",
        "raw-bytes-not-a-message",
        lambda c: c.unary_unary("/aiworker.parser.v1.Parser/ParsePdf")(b"\xff\xff\xff\xff not protobuf"),
        "request",
    ),
]


@pytest.mark.parametrize(("kind", "call", "needle"), [pytest.param(c[0], c[2], c[3], id=c[1]) for c in SERVICE_REFUSED])
def test_services_refuse_with_invalid_argument(stack, pids, kind, call, needle):
    with grpc.insecure_channel(stack.services[kind].address) as channel:
        with pytest.raises(grpc.RpcError) as caught:
            call(channel)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
    assert needle.lower() in (caught.value.details() or "").lower(), caught.value.details()


# -- accepted, then failed fast at the first stage, never retried ---------------------------
ACCEPTED_THEN_FAILED = [
    (
        "pdf-header-then-garbage",
        "/api/v1/pipelines/resume",
        upload("cv.pdf", b"%PDF-1.7\n" + bytes(range(256)) * 4, "application/pdf"),
        "INVALID_ARGUMENT",
    ),
    ("pdf-encrypted", "/api/v1/pipelines/resume", upload("locked.pdf", encrypted_pdf(), "application/pdf"), "password"),
    (
        "pdf-scan-without-text",
        "/api/v1/pipelines/resume",
        upload("scan.pdf", image_only_pdf(), "application/pdf"),
        "no extractable text",
    ),
    (
        "audio-that-is-not",
        "/api/v1/pipelines/interview-answer",
        upload("answer.wav", NOT_AUDIO, "audio/wav"),
        "INVALID_ARGUMENT",
    ),
]


@pytest.mark.parametrize(("path", "kwargs", "needle"), [pytest.param(*c[1:], id=c[0]) for c in ACCEPTED_THEN_FAILED])
def test_input_only_a_service_can_judge_fails_its_pipeline_fast_without_retries(
    client, stack, pids, path, kwargs, needle
):
    response = client.post(path, **kwargs)
    assert response.status_code == 202, response.text
    data = response.json()["data"]
    task_ids = data["task_ids"]
    status = wait_for(
        lambda: (
            (s := client.get(f"/api/v1/pipelines/{data['pipeline_id']}").json()["data"])["overall_state"]
            in ("FAILURE", "SUCCESS")
            and s
        ),
        90,
        "pipeline finished",
    )
    assert status["overall_state"] == "FAILURE"
    stages = [t["status"] for t in status["tasks"]]
    assert stages == ["FAILURE"] + ["SKIPPED"] * (len(task_ids) - 1), stages
    rows = wait_statuses(stack.settings.tracking_database_url, task_ids[:1], ["FAILURE"], timeout=30)
    assert rows[0]["retry_count"] == 0, rows[0]["retry_reason"]
    assert needle.lower() in (rows[0]["error_message"] or "").lower(), rows[0]["error_message"]


def test_a_path_like_filename_is_reduced_to_a_safe_name(client, stack, pids):
    pdf = sample_pdf(["Park. Data engineer. Airflow and Celery."])
    response = client.post("/api/v1/pipelines/resume", **upload("../../etc/passwd\u202e.pdf", pdf, "application/pdf"))
    assert response.status_code == 202, response.text
    pipeline_id = response.json()["data"]["pipeline_id"]
    final = wait_for(
        lambda: (
            (s := client.get(f"/api/v1/pipelines/{pipeline_id}").json()["data"])["overall_state"]
            in ("FAILURE", "SUCCESS")
            and s
        ),
        90,
        "pipeline finished",
    )
    assert final["overall_state"] == "SUCCESS"
    first = wait_statuses(stack.settings.tracking_database_url, [final["tasks"][0]["task_id"]], ["SUCCESS"])[0]
    filename = first["args"][0]["filename"]
    assert "/" not in filename and ".." not in filename and filename.endswith(".pdf"), filename
    assert not list(stack.blob_dir.parent.glob("etc/passwd*"))


# -- afterwards -----------------------------------------------------------------------------
def test_no_process_crashed_and_everything_is_still_ready(client, stack, gateway, pids):
    procs = {f"svc-{k}": s.process for k, s in stack.services.items()}
    procs.update({f"worker-{k}": w for k, w in stack.workers.items()})
    procs["gateway"] = gateway.process
    assert {name: (proc.pid, proc.alive()) for name, proc in procs.items()} == {
        name: (pid, True) for name, pid in pids.items()
    }
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text


def test_text_with_nul_and_odd_unicode_runs_and_is_tracked(client, stack, pids):
    """Valid but awkward text (NUL bytes, RTL override, combining marks, emoji, CJK) is
    cleaned by the pipeline and recorded intact enough: PostgreSQL cannot store NUL in
    text or JSON, so tracking must not lose the record over it."""
    text = "Celery\u0000 chains \u202eevil\u202c stages: cafe\u0301, \U0001f680, 한국어 이력서."
    response = client.post(
        "/api/v1/tasks/ai-pipeline", json={"text": text, "options": {"task": "keywords", "max_new_tokens": 8}}
    )
    assert response.status_code == 202, response.text
    data = response.json()["data"]
    final = wait_for(
        lambda: (
            (s := client.get(f"/api/v1/pipelines/{data['pipeline_id']}").json()["data"])["overall_state"]
            in ("FAILURE", "SUCCESS")
            and s
        ),
        180,
        "pipeline finished",
    )
    assert final["overall_state"] == "SUCCESS", final
    rows = wait_statuses(stack.settings.tracking_database_url, data["task_ids"], ["SUCCESS"] * 4, timeout=30)
    assert "한국어" in json.dumps(rows[0]["args"], ensure_ascii=False)
