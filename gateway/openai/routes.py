"""The OpenAI-compatible routes (/v1): models, embeddings, chat completions,
audio transcriptions. Same API keys as /api; errors in OpenAI's shape
(gateway.openai.errors)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request, Response
from fastapi.responses import StreamingResponse
from fastapi.routing import APIRoute

from gateway.openai.audio import STT_TIMEOUT_SECONDS, transcribe
from gateway.openai.chat import create_chat_completion
from gateway.openai.deps import State
from gateway.openai.embeddings import EMBED_TIMEOUT_SECONDS, create_embeddings
from gateway.openai.errors import OpenAIError, OpenAIRoute, error_responses, model_not_found
from gateway.openai.schemas import (
    ChatCompletion,
    ChatCompletionRequest,
    EmbeddingList,
    EmbeddingRequest,
    ModelList,
    ModelObject,
    Transcription,
    TranscriptionForm,
    TranscriptionVerbose,
)
from gateway.rest.deps import require_api_key
from gateway.rest.routes_pipelines import read_upload
from orchestrator.pipelines.uploads import check_audio

PREFIX = "/v1"
SERVICE_ERRORS = (429, 500, 503, 504)

router = APIRouter(
    prefix=PREFIX,
    tags=["openai"],
    route_class=OpenAIRoute,
    dependencies=[Depends(require_api_key)],
    responses=error_responses(401),
)


@router.get("/models", response_model=ModelList)
async def list_models(state: State) -> ModelList:
    """The models served now (a service that is down is left out), each with its service and device."""
    return ModelList(data=[ModelObject(**vars(model)) for model in await state.models.served()])


@router.get("/models/{model:path}", response_model=ModelObject, responses=error_responses(404))
async def retrieve_model(model: str, state: State) -> ModelObject:
    served = await state.models.served()
    for found in served:
        if found.id == model:
            return ModelObject(**vars(found))
    raise model_not_found(model, ", ".join(m.id for m in served) or None)


@router.post("/embeddings", response_model=EmbeddingList, responses=error_responses(400, 404, *SERVICE_ERRORS))
async def embeddings(body: EmbeddingRequest, request: Request, state: State) -> EmbeddingList:
    """Vectors of svc-embedder (all-MiniLM-L6-v2 unless configured otherwise), L2-normalised."""
    ctx = state.backend.context(request, EMBED_TIMEOUT_SECONDS)
    return await create_embeddings(body, state.backend, state.models, ctx)


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    responses={
        200: {
            "description": "a chat.completion; with `stream: true` Server-Sent Events instead: `data: "
            "<chat.completion.chunk>` (the first with the role, the last with finish_reason, then one with "
            "`usage` and no choices when stream_options.include_usage), then `data: [DONE]`",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        **error_responses(400, 404, *SERVICE_ERRORS),
    },
)
async def chat_completions(
    body: ChatCompletionRequest, request: Request, state: State
) -> ChatCompletion | StreamingResponse:
    """One reply of svc-llm (SmolLM2-135M-Instruct unless configured otherwise) to the messages."""
    return await create_chat_completion(body, request, state.backend, state.models)


@router.post(
    "/audio/transcriptions",
    response_model=None,
    responses={
        200: {
            "description": "json: {text}; verbose_json: with language, duration and segments; text, srt and vtt "
            "as plain text",
            "model": Transcription | TranscriptionVerbose,
            "content": {"text/plain": {"schema": {"type": "string"}}, "text/vtt": {"schema": {"type": "string"}}},
        },
        **error_responses(400, 404, 413, *SERVICE_ERRORS),
    },
)
async def transcriptions(
    form: Annotated[TranscriptionForm, Form(media_type="multipart/form-data")], request: Request, state: State
) -> Response:
    """The transcript of svc-stt (Whisper tiny.en unless configured otherwise)."""
    limit = request.app.state.gateway_settings.max_upload_bytes
    upload = read_upload(form.file, limit)
    check_audio(upload, limit)
    upload.file.seek(0)
    ctx = state.backend.context(request, STT_TIMEOUT_SECONDS)
    return await transcribe(form, upload.file.read(), state.backend, state.models, ctx)


@router.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
async def unknown_route(path: str, request: Request) -> Response:
    """What OpenAI answers for a URL it does not serve; a served one asked with another method is a 405."""
    allowed = sorted(
        {
            method
            for route in router.routes
            if isinstance(route, APIRoute)
            and route.endpoint is not unknown_route
            and route.path_regex.match(request.url.path)
            for method in route.methods
        }
    )
    if allowed:
        message = f"Method Not Allowed: {request.method} {request.url.path} takes {', '.join(allowed)}"
        raise OpenAIError(405, message, code="method_not_allowed", headers={"Allow": ", ".join(allowed)})
    raise OpenAIError(404, f"Invalid URL ({request.method} {request.url.path})", code="unknown_url")
