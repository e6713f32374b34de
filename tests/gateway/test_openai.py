"""The OpenAI-compatible endpoints (/v1), driven with the official `openai`
package against the session's gateway and its real services: models, embeddings
(equal to svc-embedder's own), chat (streamed equals unary under greedy
decoding), transcriptions in every format, and each error as the SDK's class."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path

import grpc
import httpx
import jiwer
import numpy as np
import openai
import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from openai import OpenAI

from gateway.openai.errors import OpenAIRoute
from orchestrator.clients import CallContext, EmbedderClient, LlmClient
from orchestrator.errors import RetryableServiceError
from tests.llm.support import wait_for_event
from tests.support.keys import API_KEY

SAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "samples"
TEXTS = ["Celery chains four stages.", "Redis keeps the queues and the live progress of every pipeline."]
CHAT = [
    {"role": "system", "content": "You are a concise assistant."},
    {"role": "user", "content": "Name three colors."},
]


@pytest.fixture(scope="module")
def oai(gateway) -> OpenAI:
    return OpenAI(base_url=f"{gateway.url}/v1", api_key=API_KEY, max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def served(oai) -> dict[str, str]:
    """service → the id of the model it serves, from GET /v1/models."""
    return {model.model_extra["service"]: model.id for model in oai.models.list().data}


def error_of(raised: pytest.ExceptionInfo) -> dict:
    body = raised.value.body
    assert set(body) == {"message", "type", "param", "code"}, body  # the SDK hands over body["error"]
    return body


# -- models -----------------------------------------------------------------------


def test_models_lists_the_three_services_with_their_device(oai, stack):
    models = oai.models.list().data
    assert sorted(m.model_extra["service"] for m in models) == ["embedder", "llm", "stt"]
    for model in models:
        assert model.object == "model" and model.owned_by == "aiworker" and model.created > 0
        assert model.model_extra["device"] == "cpu"
    by_service = {m.model_extra["service"]: m for m in models}
    status = stack.app.aiworker.client(LlmClient).model_status(CallContext(timeout=10))
    assert by_service["llm"].id == status.model
    assert by_service["llm"].model_extra["state"] == "loaded"
    for model in models:  # the embedder's id has a slash in it
        assert oai.models.retrieve(model.id).id == model.id
    with pytest.raises(openai.NotFoundError) as raised:
        oai.models.retrieve("gpt-4o")
    assert error_of(raised)["code"] == "model_not_found"


# -- embeddings -------------------------------------------------------------------


def test_embeddings_equal_the_service_as_floats_and_as_base64(oai, served, stack):
    direct = stack.app.aiworker.client(EmbedderClient).embed(TEXTS, CallContext(timeout=30), normalize=True)
    want = np.array([v.values for v in direct.vectors], dtype=np.float32)
    assert direct.model == served["embedder"] and want.shape == (2, 384)

    as_floats = oai.embeddings.create(model=served["embedder"], input=TEXTS, encoding_format="float")
    assert [d.index for d in as_floats.data] == [0, 1] and as_floats.model == served["embedder"]
    np.testing.assert_allclose(np.array([d.embedding for d in as_floats.data]), want, atol=1e-5)

    as_base64 = oai.embeddings.create(model=served["embedder"], input=TEXTS, encoding_format="base64")
    decoded = np.array([np.frombuffer(base64.b64decode(d.embedding), dtype="<f4") for d in as_base64.data])
    np.testing.assert_allclose(decoded, want, atol=1e-5)

    by_default = oai.embeddings.create(model=served["embedder"], input=TEXTS[0])  # the SDK asks for base64
    np.testing.assert_allclose(np.array(by_default.data[0].embedding), want[0], atol=1e-5)

    usage = as_floats.usage
    assert usage.total_tokens == usage.prompt_tokens > len(TEXTS) * 2 and usage.model_extra["estimated"] is True


def test_a_batch_over_the_services_per_call_limit_is_split(oai, served):
    texts = [f"sentence number {i}" for i in range(300)]  # svc-embedder takes 256 per call
    reply = oai.embeddings.create(model=served["embedder"], input=texts, encoding_format="float")
    assert [d.index for d in reply.data] == list(range(300))
    assert all(len(d.embedding) == 384 for d in reply.data)


def test_embedding_requests_it_cannot_honour_are_refused(oai, served):
    with pytest.raises(openai.NotFoundError) as raised:
        oai.embeddings.create(model="text-embedding-3-small", input="hello")
    assert error_of(raised) | {"message": ""} == {
        "message": "",
        "type": "invalid_request_error",
        "param": "model",
        "code": "model_not_found",
    }
    with pytest.raises(openai.BadRequestError) as raised:
        oai.embeddings.create(model=served["embedder"], input=[[101, 2023, 102]])
    assert error_of(raised)["param"] == "input" and "token arrays" in error_of(raised)["message"]
    with pytest.raises(openai.BadRequestError) as raised:
        oai.embeddings.create(model=served["embedder"], input="hello", dimensions=128)
    assert error_of(raised)["param"] == "dimensions"
    assert oai.embeddings.create(model=served["embedder"], input="hello", dimensions=384).data


# -- chat -------------------------------------------------------------------------


def test_a_streamed_chat_equals_the_unary_one_under_greedy_decoding(oai, served):
    unary = oai.chat.completions.create(model=served["llm"], messages=CHAT, temperature=0, max_tokens=24)
    choice = unary.choices[0]
    assert unary.object == "chat.completion" and unary.model == served["llm"] and unary.id.startswith("chatcmpl-")
    assert choice.message.role == "assistant" and choice.message.content and choice.finish_reason in ("stop", "length")
    assert unary.usage.total_tokens == unary.usage.prompt_tokens + unary.usage.completion_tokens
    assert 0 < unary.usage.completion_tokens <= 24

    chunks = list(
        oai.chat.completions.create(
            model=served["llm"],
            messages=CHAT,
            temperature=0,
            max_tokens=24,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert all(c.object == "chat.completion.chunk" and c.id == chunks[0].id for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    with_choices = [c for c in chunks if c.choices]
    assert [c.choices[0].finish_reason for c in with_choices][-1] == choice.finish_reason
    assert all(c.choices[0].finish_reason is None for c in with_choices[:-1])
    assert "".join(c.choices[0].delta.content or "" for c in with_choices) == choice.message.content
    assert chunks[-1].choices == [] and chunks[-1].usage == unary.usage


def test_max_tokens_ends_with_length_and_neutral_values_are_accepted(oai, served):
    reply = oai.chat.completions.create(
        model=served["llm"],
        messages=[{"role": "developer", "content": "Answer at length."}, {"role": "user", "content": "Tell a story."}],
        max_completion_tokens=3,
        temperature=0,
        n=1,
        logprobs=False,
        response_format={"type": "text"},
        stop=["\n\n\n"],
    )
    assert reply.choices[0].finish_reason == "length" and reply.usage.completion_tokens == 3


def test_sampling_settings_reach_the_service(oai, served):
    """The same seed samples the same text; another seed (most likely) another."""

    def sample(seed: int) -> str:
        reply = oai.chat.completions.create(
            model=served["llm"], messages=CHAT, temperature=1.5, top_p=0.95, seed=seed, max_tokens=24
        )
        return reply.choices[0].message.content

    first = sample(7)
    assert sample(7) == first
    assert any(sample(seed) != first for seed in (8, 9, 10))


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}, "tools"),
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"presence_penalty": 0.5}, "presence_penalty"),
        ({"messages": [{"role": "tool", "content": "42", "tool_call_id": "c1"}]}, "messages[0].tool_call_id"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}, None),
        ({"stream_options": {"include_usage": True}}, "stream_options"),
        ({"temperature": 3}, "temperature"),
    ],
)
def test_chat_fields_it_cannot_honour_are_a_400_naming_them(oai, served, extra, param):
    request = {"model": served["llm"], "messages": CHAT, **extra}
    with pytest.raises(openai.BadRequestError) as raised:
        oai.chat.completions.create(**request)
    error = error_of(raised)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == (param or "messages[0].content[0].type")


def test_an_unknown_request_field_is_unrecognised(oai, served):
    with pytest.raises(openai.BadRequestError) as raised:
        oai.chat.completions.create(model=served["llm"], messages=CHAT, extra_body={"best_of": 2})
    assert error_of(raised)["param"] == "best_of" and "Unrecognized" in error_of(raised)["message"]


def test_an_unknown_chat_model_is_not_found(oai):
    with pytest.raises(openai.NotFoundError) as raised:
        oai.chat.completions.create(model="gpt-4o", messages=CHAT)
    assert error_of(raised)["code"] == "model_not_found"


def test_a_stream_the_client_leaves_stops_generating(oai, served, stack):
    rid = f"openai-test-{uuid.uuid4().hex[:12]}"
    stream = oai.chat.completions.create(
        model=served["llm"],
        messages=[{"role": "user", "content": "Write a very long story about a dragon, with many chapters."}],
        max_tokens=1000,
        stream=True,
        extra_headers={"x-request-id": rid},
    )
    for i, _ in enumerate(stream):
        if i == 3:
            break
    stream.close()
    finished = wait_for_event(stack.services["llm"], "generation_finished", rid, timeout=30)
    assert finished["finish_reason"] == "cancelled" and finished["completion_tokens"] < 200


# -- audio ------------------------------------------------------------------------


def test_a_spoken_answer_is_transcribed_in_every_format(oai, served):
    audio = SAMPLES / "answer.wav"
    said = (SAMPLES / "answer.txt").read_text().strip()

    def transcribe(**kwargs):
        with audio.open("rb") as file:
            return oai.audio.transcriptions.create(model=served["stt"], file=file, language="en", **kwargs)

    as_json = transcribe()
    assert jiwer.wer(said.lower(), as_json.text.lower()) < 0.3, as_json.text
    prompted = transcribe(prompt="An interview about Celery, Redis and PostgreSQL.")  # reaches svc-stt
    assert jiwer.wer(said.lower(), prompted.text.lower()) < 0.3, prompted.text

    verbose = transcribe(response_format="verbose_json", timestamp_granularities=["segment"])
    assert verbose.text == as_json.text and verbose.language == "en" and 5 < verbose.duration < 60
    segments = verbose.segments
    assert [s.id for s in segments] == list(range(len(segments))) and segments
    assert all(0 <= s.start < s.end <= verbose.duration + 0.01 and s.text for s in segments)

    text = transcribe(response_format="text")
    assert text.strip() == as_json.text

    srt = transcribe(response_format="srt")
    blocks = srt.strip().split("\n\n")
    assert len(blocks) == len(segments) and blocks[0].startswith("1\n00:00:")
    assert " --> " in blocks[0].splitlines()[1] and "," in blocks[0].splitlines()[1]

    vtt = transcribe(response_format="vtt")
    assert vtt.startswith("WEBVTT\n\n00:00:") and vtt.count(" --> ") == len(segments)


def test_transcription_requests_it_cannot_honour_are_refused(oai, served):
    with pytest.raises(openai.BadRequestError) as raised:
        oai.audio.transcriptions.create(model=served["stt"], file=("answer.wav", b"RIFF but not audio", "audio/wav"))
    assert error_of(raised)["type"] == "invalid_request_error"
    with pytest.raises(openai.BadRequestError) as raised:
        oai.audio.transcriptions.create(model=served["stt"], file=("notes.txt", b"some words", "text/plain"))
    assert "audio expected" in error_of(raised)["message"]
    wav = (SAMPLES / "answer.wav").read_bytes()
    with pytest.raises(openai.NotFoundError) as raised:
        oai.audio.transcriptions.create(model="whisper-1", file=("answer.wav", wav, "audio/wav"))
    assert error_of(raised)["code"] == "model_not_found"
    with pytest.raises(openai.BadRequestError) as raised:
        oai.audio.transcriptions.create(model=served["stt"], file=("answer.wav", wav, "audio/wav"), temperature=0.4)
    assert error_of(raised)["param"] == "temperature"
    with pytest.raises(openai.BadRequestError) as raised:  # svc-stt's own limit: the prompt reached it
        oai.audio.transcriptions.create(model=served["stt"], file=("answer.wav", wav, "audio/wav"), prompt="x " * 600)
    assert "prompt" in error_of(raised)["message"]


# -- keys and the error shape ------------------------------------------------------


def test_a_bad_key_is_the_sdks_authentication_error(gateway, served):
    bad = OpenAI(base_url=f"{gateway.url}/v1", api_key="not-a-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as raised:
        bad.models.list()
    assert raised.value.status_code == 401
    assert error_of(raised) | {"message": ""} == {
        "message": "",
        "type": "invalid_request_error",
        "param": None,
        "code": "invalid_api_key",
    }
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model=served["llm"], messages=CHAT)


def test_v1_errors_are_openai_shaped_and_api_errors_keep_the_envelope(gateway):
    with gateway.client() as client:
        broken = client.post("/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"})
        assert broken.status_code == 400 and set(broken.json()) == {"error"}
        unknown = client.post("/v1/completions", json={"model": "x", "prompt": "hi"})
        assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_url"
        api = client.post("/api/v1/search", json={"k": 3})
        assert api.status_code == 422 and api.json()["success"] is False
    assert httpx.get(f"{gateway.url}/api/v1/pipelines", timeout=10).json()["success"] is False


def _failing_app(code: grpc.StatusCode) -> TestClient:
    """A router with the /v1 route class whose one route fails as a model service would."""
    router = APIRouter(route_class=OpenAIRoute)

    @router.get("/fail")
    async def fail() -> None:
        error = RetryableServiceError(f"llm: {code.name}: the queue is full")
        error.code = code
        raise error

    app = FastAPI()
    app.include_router(router)
    return TestClient(app)


def test_an_overloaded_service_is_a_429_with_retry_after_and_a_down_one_a_503():
    overloaded = _failing_app(grpc.StatusCode.RESOURCE_EXHAUSTED).get("/fail")
    assert overloaded.status_code == 429 and overloaded.headers["retry-after"] == "1"
    assert overloaded.json()["error"] | {"message": ""} == {
        "message": "",
        "type": "rate_limit_error",
        "param": None,
        "code": "overloaded",
    }
    down = _failing_app(grpc.StatusCode.UNAVAILABLE).get("/fail")
    assert down.status_code == 503 and down.json()["error"]["type"] == "server_error"
