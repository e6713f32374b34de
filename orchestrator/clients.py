"""Small typed gRPC clients of the model services, as the tasks use them.

Channels are created lazily, once per worker process (after Celery forks its
pool: a channel made before fork breaks in the child), and reused. Every call
carries a deadline (the task's remaining time) and the ids in metadata."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

import grpc

from aiworker.embedder.v1 import embedder_pb2, embedder_pb2_grpc
from aiworker.llm.v1 import llm_pb2, llm_pb2_grpc
from aiworker.parser.v1 import parser_pb2, parser_pb2_grpc
from aiworker.stt.v1 import stt_pb2, stt_pb2_grpc
from orchestrator.errors import RetryableServiceError, ServiceCallError

RETRYABLE_CODES = frozenset({
    grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.RESOURCE_EXHAUSTED,
})


@dataclass(frozen=True)
class CallContext:
    """What travels with one RPC: its deadline and the ids for the service's logs."""

    timeout: float
    metadata: tuple[tuple[str, str], ...] = field(default_factory=tuple)


class ChannelPool:
    """One channel per address per process; rebuilt in a forked child."""

    def __init__(self, max_message_bytes: int) -> None:
        self.max_message_bytes = max_message_bytes
        self._pid = os.getpid()
        self._channels: dict[str, grpc.Channel] = {}
        self._lock = threading.Lock()

    def get(self, address: str) -> grpc.Channel:
        with self._lock:
            if self._pid != os.getpid():  # inherited across fork: never reuse
                self._channels = {}
                self._pid = os.getpid()
            channel = self._channels.get(address)
            if channel is None:
                channel = grpc.insecure_channel(address, options=[
                    ("grpc.max_receive_message_length", self.max_message_bytes),
                    ("grpc.max_send_message_length", self.max_message_bytes),
                    # Reconnect quickly once a restarted service is back.
                    ("grpc.initial_reconnect_backoff_ms", 200),
                    ("grpc.max_reconnect_backoff_ms", 2000),
                ])
                self._channels[address] = channel
            return channel

    def close(self) -> None:
        with self._lock:
            for channel in self._channels.values():
                channel.close()
            self._channels = {}


def _invoke(service: str, method: Callable[..., Any], request: Any, ctx: CallContext) -> Any:
    try:
        return method(request, timeout=max(ctx.timeout, 0.1), metadata=ctx.metadata)
    except grpc.RpcError as exc:
        code, details = exc.code(), exc.details() or ""
        message = f"{service}: {code.name}: {details}"
        if code in RETRYABLE_CODES:
            raise RetryableServiceError(message) from None
        raise ServiceCallError(message) from None


class ParserClient:
    def __init__(self, channel: grpc.Channel) -> None:
        self._stub = parser_pb2_grpc.ParserStub(channel)

    def parse_pdf(self, pdf: bytes, ctx: CallContext, max_pages: int | None = None) -> parser_pb2.ParsePdfResponse:
        request = parser_pb2.ParsePdfRequest(pdf=pdf)
        if max_pages:
            request.max_pages = max_pages
        return _invoke("parser", self._stub.ParsePdf, request, ctx)


class EmbedderClient:
    def __init__(self, channel: grpc.Channel) -> None:
        self._stub = embedder_pb2_grpc.EmbedderStub(channel)

    def embed(self, texts: list[str], ctx: CallContext, normalize: bool = True) -> embedder_pb2.EmbedResponse:
        return _invoke("embedder", self._stub.Embed, embedder_pb2.EmbedRequest(texts=texts, normalize=normalize), ctx)


class LlmClient:
    def __init__(self, channel: grpc.Channel) -> None:
        self._stub = llm_pb2_grpc.LlmStub(channel)

    def generate(self, messages: list[dict[str, str]], ctx: CallContext, max_new_tokens: int = 0,
                 temperature: float = 0.0, stop: list[str] | None = None) -> llm_pb2.GenerateResponse:
        request = llm_pb2.GenerateRequest(
            messages=[llm_pb2.ChatMessage(role=m["role"], content=m["content"]) for m in messages],
            max_new_tokens=max_new_tokens, temperature=temperature, stop=stop or [],
        )
        return _invoke("llm", self._stub.Generate, request, ctx)

    def preload(self, ctx: CallContext) -> llm_pb2.PreloadResponse:
        return _invoke("llm", self._stub.Preload, llm_pb2.PreloadRequest(), ctx)

    def model_status(self, ctx: CallContext) -> llm_pb2.ModelStatusResponse:
        return _invoke("llm", self._stub.ModelStatus, llm_pb2.ModelStatusRequest(), ctx)


class SttClient:
    def __init__(self, channel: grpc.Channel) -> None:
        self._stub = stt_pb2_grpc.SttStub(channel)

    def recognize(self, audio: bytes, ctx: CallContext, language: str = "") -> stt_pb2.RecognizeResponse:
        return _invoke("stt", self._stub.Recognize, stt_pb2.RecognizeRequest(audio=audio, language=language), ctx)
