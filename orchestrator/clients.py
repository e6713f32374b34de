"""Small typed gRPC clients of the model services, as the tasks use them.

Channels are created lazily, once per worker process (after Celery forks its
pool: a channel made before fork breaks in the child), and reused. Every call
carries a deadline (the task's remaining time) and the ids in metadata."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc

from aiworker.embedder.v1 import embedder_pb2, embedder_pb2_grpc
from aiworker.llm.v1 import llm_pb2, llm_pb2_grpc
from aiworker.parser.v1 import parser_pb2, parser_pb2_grpc
from aiworker.stt.v1 import stt_pb2, stt_pb2_grpc
from orchestrator.errors import RetryableServiceError, ServiceCallError
from svc_runtime.catalogue import ServiceEntry, service
from svc_runtime.channels import channel_options, channel_target

RETRYABLE_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)


@dataclass(frozen=True)
class CallContext:
    """What travels with one RPC: its deadline and the ids for the service's logs."""

    timeout: float
    metadata: tuple[tuple[str, str], ...] = field(default_factory=tuple)


class ChannelPool:
    """One channel per address per process (rebuilt in a forked child), balancing over
    the address's replicas with keepalive (svc_runtime.channels)."""

    def __init__(self, max_message_bytes: int, keepalive_seconds: float = 10.0, keepalive_timeout_seconds: float = 5.0):
        self.options = channel_options(max_message_bytes, keepalive_seconds, keepalive_timeout_seconds)
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
                channel = grpc.insecure_channel(channel_target(address), options=self.options)
                self._channels[address] = channel
            return channel

    def close(self) -> None:
        with self._lock:
            for channel in self._channels.values():
                channel.close()
            self._channels = {}


def _invoke(entry: ServiceEntry, method: Callable[..., Any], request: Any, ctx: CallContext) -> Any:
    try:
        return method(request, timeout=max(ctx.timeout, 0.1), metadata=ctx.metadata)
    except grpc.RpcError as exc:
        raise _mapped(entry, exc) from None


def _mapped(entry: ServiceEntry, exc: grpc.RpcError) -> Exception:
    """A service's status as the error a stage raises: retryable or not."""
    code, details = exc.code(), exc.details() or ""
    message = f"{entry.name}: {code.name}: {details}"
    error = RetryableServiceError(message) if code in RETRYABLE_CODES else ServiceCallError(message)
    error.code = code  # for callers that map it on (the gateway's direct calls)
    return error


class ServiceClient:
    """A typed client of one catalogue service (`service`), over a channel to its address."""

    service: ServiceEntry

    def __init__(self, channel: grpc.Channel) -> None:
        self.channel = channel


class ParserClient(ServiceClient):
    service = service("parser")

    def __init__(self, channel: grpc.Channel) -> None:
        super().__init__(channel)
        self._stub = parser_pb2_grpc.ParserStub(channel)

    def parse_pdf(self, pdf: bytes, ctx: CallContext, max_pages: int | None = None) -> parser_pb2.ParsePdfResponse:
        request = parser_pb2.ParsePdfRequest(pdf=pdf)
        if max_pages:
            request.max_pages = max_pages
        return _invoke(self.service, self._stub.ParsePdf, request, ctx)


class EmbedderClient(ServiceClient):
    service = service("embedder")

    def __init__(self, channel: grpc.Channel) -> None:
        super().__init__(channel)
        self._stub = embedder_pb2_grpc.EmbedderStub(channel)

    def embed(self, texts: list[str], ctx: CallContext, normalize: bool = True) -> embedder_pb2.EmbedResponse:
        return _invoke(self.service, self._stub.Embed, embedder_pb2.EmbedRequest(texts=texts, normalize=normalize), ctx)


class LlmClient(ServiceClient):
    service = service("llm")

    def __init__(self, channel: grpc.Channel) -> None:
        super().__init__(channel)
        self._stub = llm_pb2_grpc.LlmStub(channel)

    def generate(
        self,
        messages: list[dict[str, str]],
        ctx: CallContext,
        max_new_tokens: int = 0,
        temperature: float = 0.0,
        stop: list[str] | None = None,
        top_p: float = 0.0,
        seed: int | None = None,
    ) -> llm_pb2.GenerateResponse:
        """`temperature` 0: greedy; `top_p` 0: no nucleus filtering; `seed`: reproducible sampling."""
        request = _generate_request(messages, max_new_tokens, temperature, stop, top_p, seed)
        return _invoke(self.service, self._stub.Generate, request, ctx)

    def generate_stream(
        self,
        messages: list[dict[str, str]],
        ctx: CallContext,
        max_new_tokens: int = 0,
        temperature: float = 0.0,
        stop: list[str] | None = None,
        top_p: float = 0.0,
        seed: int | None = None,
    ) -> Iterator[str | llm_pb2.GenerationDone]:
        """Each new piece of text as the model writes it, then the GenerationDone."""
        request = _generate_request(messages, max_new_tokens, temperature, stop, top_p, seed)
        try:
            for event in self._stub.GenerateStream(request, timeout=max(ctx.timeout, 0.1), metadata=ctx.metadata):
                yield event.delta.text if event.HasField("delta") else event.done
        except grpc.RpcError as exc:
            raise _mapped(self.service, exc) from None

    def choice_probabilities(
        self, messages: list[dict[str, str]], choices: Sequence[str], ctx: CallContext
    ) -> dict[str, float]:
        """How likely the model is to begin its reply with each choice (not normalised)."""
        request = llm_pb2.ChoiceProbabilitiesRequest(
            messages=[llm_pb2.ChatMessage(role=m["role"], content=m["content"]) for m in messages], choices=choices
        )
        reply = _invoke(self.service, self._stub.ChoiceProbabilities, request, ctx)
        return dict(zip(choices, reply.probabilities, strict=True))

    def preload(self, ctx: CallContext) -> llm_pb2.PreloadResponse:
        return _invoke(self.service, self._stub.Preload, llm_pb2.PreloadRequest(), ctx)

    def model_status(self, ctx: CallContext) -> llm_pb2.ModelStatusResponse:
        return _invoke(self.service, self._stub.ModelStatus, llm_pb2.ModelStatusRequest(), ctx)


def _generate_request(
    messages: list[dict[str, str]],
    max_new_tokens: int,
    temperature: float,
    stop: list[str] | None,
    top_p: float = 0.0,
    seed: int | None = None,
) -> llm_pb2.GenerateRequest:
    return llm_pb2.GenerateRequest(
        messages=[llm_pb2.ChatMessage(role=m["role"], content=m["content"]) for m in messages],
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        stop=stop or [],
        top_p=top_p,
        seed=seed,
    )


class SttClient(ServiceClient):
    service = service("stt")

    def __init__(self, channel: grpc.Channel) -> None:
        super().__init__(channel)
        self._stub = stt_pb2_grpc.SttStub(channel)

    def recognize(
        self,
        audio: bytes,
        ctx: CallContext,
        language: str = "",
        prompt: str = "",
        hotwords: Sequence[str] = (),
    ) -> stt_pb2.RecognizeResponse:
        """`prompt` and `hotwords` steer recognition towards the words expected
        (orchestrator.domain.stt_context builds a prompt from a question and a resume)."""
        return _invoke(self.service, self._stub.Recognize, _recognize_request(audio, language, prompt, hotwords), ctx)

    def recognize_stream(
        self,
        audio: bytes,
        ctx: CallContext,
        language: str = "",
        prompt: str = "",
        hotwords: Sequence[str] = (),
    ) -> Iterator[stt_pb2.SegmentDone | stt_pb2.RecognizeResponse]:
        """Each segment as it is transcribed (with the audio's duration), then the whole response."""
        request = _recognize_request(audio, language, prompt, hotwords)
        try:
            for event in self._stub.RecognizeStream(request, timeout=max(ctx.timeout, 0.1), metadata=ctx.metadata):
                yield event.segment if event.HasField("segment") else event.done
        except grpc.RpcError as exc:
            raise _mapped(self.service, exc) from None


def _recognize_request(audio: bytes, language: str, prompt: str, hotwords: Sequence[str]) -> stt_pb2.RecognizeRequest:
    return stt_pb2.RecognizeRequest(
        audio=audio, language=language, context=stt_pb2.SpeechContext(prompt=prompt, hotwords=list(hotwords))
    )
