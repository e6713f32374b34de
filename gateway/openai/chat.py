"""POST /v1/chat/completions → svc-llm's Generate, or GenerateStream as
Server-Sent Events of chat.completion.chunk.

Mapped: messages (system, developer as system, user, assistant; string content
or text parts), max_completion_tokens / max_tokens, temperature (OpenAI's
default 1; 0 = greedy), top_p, stop, seed. What cannot be honoured (tools,
n > 1, logprobs, a response_format other than text, penalties, …) is refused
with a 400 naming the field; its neutral value is accepted.

A stream answers its HTTP status only once the first event came (so a full
queue is a 429, not a broken stream); an error after that is an `error` event,
as OpenAI sends, and the stream ends without [DONE]."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse

from aiworker.llm.v1 import llm_pb2
from gateway.openai.backend import Backend
from gateway.openai.errors import OpenAIError, openai_error_of, unsupported
from gateway.openai.models import PROBE_TIMEOUT_SECONDS, ModelCatalog
from gateway.openai.schemas import (
    AssistantMessage,
    ChatChoice,
    ChatCompletion,
    ChatCompletionRequest,
    ChatMessage,
    CompletionUsage,
)
from orchestrator.clients import LlmClient

CHAT_TIMEOUT_SECONDS = 300.0
FINISH_REASONS = {
    llm_pb2.FINISH_REASON_EOS: "stop",
    llm_pb2.FINISH_REASON_STOP_SEQUENCE: "stop",
    llm_pb2.FINISH_REASON_LENGTH: "length",
    llm_pb2.FINISH_REASON_UNSPECIFIED: "stop",
}
ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


def _empty(value: Any) -> bool:
    return not value


def _one_of(*neutral: Any) -> Callable[[Any], bool]:
    return lambda value: value is None or any(value == n for n in neutral)


# Fields of OpenAI's request this server cannot honour, each with the test of its neutral value.
UNSUPPORTED: dict[str, Callable[[Any], bool]] = {
    "n": _one_of(1),
    "store": _one_of(False),
    "frequency_penalty": _one_of(0),
    "presence_penalty": _one_of(0),
    "logit_bias": _empty,
    "logprobs": _one_of(False),
    "top_logprobs": _one_of(0),
    "tools": _empty,
    "functions": _empty,
    "tool_choice": _one_of("none", "auto"),
    "function_call": _one_of("none", "auto"),
    "response_format": _one_of({"type": "text"}),
    "modalities": _one_of(["text"]),
    "audio": _one_of(),
    "prediction": _one_of(),
    "reasoning_effort": _one_of(),
    "verbosity": _one_of(),
    "web_search_options": _one_of(),
}
MESSAGE_UNSUPPORTED = {
    "tool_calls": _empty,
    "tool_call_id": _one_of(),
    "function_call": _one_of(),
    "audio": _one_of(),
}


async def create_chat_completion(
    body: ChatCompletionRequest, request: Request, backend: Backend, catalog: ModelCatalog
) -> ChatCompletion | StreamingResponse:
    messages = messages_of(body.messages)
    sampling = sampling_of(body)
    if body.stream_options is not None and not body.stream:
        raise OpenAIError(400, "'stream_options' is only allowed when 'stream' is true", param="stream_options")
    model = await catalog.llm(body.model, backend.context(request, PROBE_TIMEOUT_SECONDS))
    client = backend.client(LlmClient)
    ctx = backend.context(request, CHAT_TIMEOUT_SECONDS)
    completion_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
    if body.stream:
        events = backend.stream(lambda: client.generate_stream(messages, ctx, **sampling))
        first = await anext(events)  # errors before the first event are the response's status
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        chunks = _chunks(first, events, request, completion_id, created, model, include_usage)
        return StreamingResponse(chunks, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
    reply = await backend.run(client.generate, messages, ctx, **sampling)
    usage = reply.usage
    return ChatCompletion(
        id=completion_id,
        created=created,
        model=reply.model or model,
        choices=[
            ChatChoice(message=AssistantMessage(content=reply.text), finish_reason=FINISH_REASONS[reply.finish_reason])
        ],
        usage=CompletionUsage(
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            total_tokens=usage.prompt_tokens + usage.completion_tokens,
        ),
    )


def messages_of(messages: list[ChatMessage]) -> list[dict[str, str]]:
    converted = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        for name, neutral in MESSAGE_UNSUPPORTED.items():
            if not neutral(getattr(message, name)):
                raise unsupported(f"{where}.{name}", "tool and function calls")
        if message.role not in ROLES:
            raise unsupported(
                f"{where}.role",
                f"role {message.role!r} (tool and function results); send system, user or assistant messages",
            )
        converted.append({"role": ROLES[message.role], "content": _text_of(message, where)})
    return converted


def _text_of(message: ChatMessage, where: str) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    texts = []
    for j, part in enumerate(content):
        if part.type != "text":
            raise unsupported(f"{where}.content[{j}].type", f"{part.type!r} parts; only text parts are")
        texts.append(part.text)
    return "".join(texts)


def sampling_of(body: ChatCompletionRequest) -> dict[str, Any]:
    """The request's generation settings as LlmClient's keyword arguments."""
    for name, neutral in UNSUPPORTED.items():
        if not neutral(getattr(body, name)):
            raise unsupported(name, "this model service generates one plain-text choice without tools or logprobs")
    stop = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
    temperature = 1.0 if body.temperature is None else body.temperature
    top_p = body.top_p
    if top_p == 0:  # only the most likely token: greedy decoding
        temperature, top_p = 0.0, None
    sampling: dict[str, Any] = {
        "max_new_tokens": body.max_completion_tokens or body.max_tokens or 0,  # 0 = the service's default
        "temperature": temperature,
        "stop": stop,
    }
    if top_p is not None and top_p < 1:
        sampling["top_p"] = top_p
    if body.seed is not None and temperature > 0:  # greedy decoding needs no seed to repeat itself
        sampling["seed"] = body.seed
    return sampling


async def _chunks(
    first: str | llm_pb2.GenerationDone,
    events: AsyncIterator[str | llm_pb2.GenerationDone],
    request: Request,
    completion_id: str,
    created: int,
    model: str,
    include_usage: bool,
) -> AsyncIterator[str]:
    head = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model}

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> str:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return _sse({**head, "choices": [choice], **({"usage": None} if include_usage else {})})

    try:
        yield chunk({"role": "assistant", "content": "", "refusal": None})
        event = first
        while isinstance(event, str):
            if event:
                yield chunk({"content": event})
            event = await anext(events)
        yield chunk({}, FINISH_REASONS[event.finish_reason])
        if include_usage:
            usage = event.usage
            total = usage.prompt_tokens + usage.completion_tokens
            yield _sse(
                {
                    **head,
                    "choices": [],
                    "usage": {
                        "prompt_tokens": usage.prompt_tokens,
                        "completion_tokens": usage.completion_tokens,
                        "total_tokens": total,
                    },
                }
            )
        yield "data: [DONE]\n\n"
    except StopAsyncIteration:
        yield _sse(OpenAIError(502, "the LLM's stream ended before it was done", code="stream_ended").body())
    except Exception as exc:  # noqa: BLE001 - sent as the stream's error event
        yield _sse(openai_error_of(exc, request).body())
    finally:
        await events.aclose()


def _sse(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data)}\n\n"
