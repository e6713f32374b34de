"""Maps aiworker.embedder.v1 ↔ TextEmbedder, through the runtime's dynamic
batcher: concurrent calls share model calls, each gets exactly its own vectors.

A call's texts are measured (tokenized) here, so batches are bounded by tokens
and run sorted by length. With --idle-unload-seconds the model is unloaded after
that long without an Embed call and loads again on the next call (inside its
batch) or on Preload; health stays SERVING meanwhile, and ModelStatus and the
`x-aiworker-model-state` trailing metadata of every reply say which state it is in.
"""

from __future__ import annotations

import asyncio
import time

import grpc

from aiworker.embedder.v1 import embedder_pb2, embedder_pb2_grpc
from svc_embedder.model import EmbeddedText, MeasuredText, ModelState, TextEmbedder, assemble
from svc_embedder.settings import EmbedderSettings
from svc_runtime.batching import DynamicBatcher
from svc_runtime.device import resolve_device
from svc_runtime.errors import Unavailable
from svc_runtime.logs import get_logger
from svc_runtime.metrics import BatchMetrics
from svc_runtime.server import ServicerBase

log = get_logger(__name__)

WARM_UP_TEXTS = [
    "warm-up: the model runs once before the service says SERVING",
    "a second text, so a batch of two goes through the whole path",
]
# Tokenizing this many texts takes long enough to move off the event loop.
_MEASURE_OFF_LOOP = 16
_STATES = {
    ModelState.UNLOADED: embedder_pb2.MODEL_STATE_UNLOADED,
    ModelState.LOADING: embedder_pb2.MODEL_STATE_LOADING,
    ModelState.LOADED: embedder_pb2.MODEL_STATE_LOADED,
}


class EmbedderServicer(ServicerBase, embedder_pb2_grpc.EmbedderServicer):
    service_name = embedder_pb2.DESCRIPTOR.services_by_name["Embedder"].full_name

    def __init__(self, settings: EmbedderSettings) -> None:
        self.settings = settings
        self.device = resolve_device(settings.device)
        self.embedder = TextEmbedder(
            settings.model,
            device=self.device,
            half_precision=settings.half_precision,
            torch_threads=settings.torch_threads,
            max_texts_per_call=settings.max_texts_per_call,
            max_text_chars=settings.max_text_chars,
            model_name=settings.model_name,
            on_state=lambda state: self.report_model_state(state.value),
        )
        self.report_model_state(ModelState.UNLOADED.value)
        self.batcher: DynamicBatcher[MeasuredText, EmbeddedText] | None = None
        self._last_call = time.monotonic()
        self._in_flight = 0  # Embed calls between validation and reply
        self._idle_watch: asyncio.Task | None = None

    def register(self, server: grpc.aio.Server) -> None:
        embedder_pb2_grpc.add_EmbedderServicer_to_server(self, server)

    async def startup(self) -> None:
        s = self.settings
        batcher: DynamicBatcher[MeasuredText, EmbeddedText] = DynamicBatcher(
            self.embedder.encode_batch,
            max_batch_size=s.max_batch_size,
            max_queue_delay_ms=s.max_queue_delay_ms,
            max_queued_items=s.max_queued_texts,
            cost=_tokens,
            max_batch_cost=s.max_batch_tokens,
            observer=BatchMetrics(self.metrics, metric_prefix="aiworker_embedder_batch", with_cost=True),
            name="embedder-batcher",
        )
        # Loaded on the batch thread, the one that computes: a second thread running torch's
        # OpenMP regions would give libgomp a second thread pool, and on a small machine its
        # workers then stop spinning between regions (see svc_llm.scheduler).
        await batcher.run_exclusive(self.embedder.load)
        await self._warm(batcher)
        self.batcher = batcher
        if s.idle_unload_seconds:
            self._idle_watch = asyncio.create_task(self._unload_when_idle(), name="embedder-idle-unload")
        log.info(
            "embedder_warm",
            model=self.embedder.name,
            device=self.device,
            dimension=self.embedder.dimension,
            max_tokens=self.embedder.max_tokens,
            torch_threads=self.embedder.compute_threads,
            max_batch_size=s.max_batch_size,
            max_batch_tokens=s.max_batch_tokens,
            max_queue_delay_ms=s.max_queue_delay_ms,
            max_queued_texts=s.max_queued_texts,
            idle_unload_seconds=s.idle_unload_seconds,
        )

    async def _warm(self, batcher: DynamicBatcher[MeasuredText, EmbeddedText]) -> None:
        await batcher.submit(self.embedder.measure(WARM_UP_TEXTS))
        # Once more at the full token window, so the first long text is not slow either.
        await batcher.submit(self.embedder.measure(["warm " * (self.embedder.max_tokens or 128)]))

    async def shutdown(self) -> None:
        if self._idle_watch is not None:
            self._idle_watch.cancel()
        if self.batcher is not None:
            await self.batcher.close()

    async def _unload_when_idle(self) -> None:
        idle = self.settings.idle_unload_seconds
        while True:
            await asyncio.sleep(min(1.0, idle / 4))
            batcher = self.batcher
            quiet = not self._in_flight and time.monotonic() - self._last_call >= idle
            if quiet and self.embedder.loaded and batcher is not None:
                # On the batch thread, between batches: never under a computing batch.
                await batcher.run_exclusive(lambda: self.embedder.unload("idle"))

    # -- RPCs ------------------------------------------------------------------

    async def Embed(self, request: embedder_pb2.EmbedRequest, context: grpc.aio.ServicerContext):
        texts = list(request.texts)
        self.embedder.validate(texts)
        if self.batcher is None:
            raise Unavailable("the embedding model is still loading; retry when health says SERVING")
        self._in_flight += 1
        try:
            if len(texts) < _MEASURE_OFF_LOOP:
                measured = self.embedder.measure(texts)
            else:
                measured = await asyncio.to_thread(self.embedder.measure, texts)
            result = assemble(await self.batcher.submit(measured), request.normalize)
        finally:
            self._in_flight -= 1
            self._last_call = time.monotonic()
        return embedder_pb2.EmbedResponse(
            vectors=[embedder_pb2.Vector(values=row) for row in result.vectors.tolist()],
            dimension=self.embedder.dimension,
            model=self.embedder.name,
            truncated=result.truncated,
            max_tokens=self.embedder.max_tokens,
        )

    async def Preload(self, request: embedder_pb2.PreloadRequest, context: grpc.aio.ServicerContext):
        if self.batcher is None:
            raise Unavailable("the embedding model is still loading; retry when health says SERVING")
        self._last_call = time.monotonic()
        seconds = await self.batcher.run_exclusive(self.embedder.load)
        if seconds:
            await self._warm(self.batcher)
        log.info("preload_successful", model=self.embedder.name, seconds=round(seconds, 3))
        return embedder_pb2.PreloadResponse(model=self.embedder.name, load_seconds=seconds, already_loaded=not seconds)

    async def ModelStatus(self, request: embedder_pb2.ModelStatusRequest, context: grpc.aio.ServicerContext):
        e = self.embedder
        return embedder_pb2.ModelStatusResponse(
            state=_STATES[e.state], model=e.name, device=self.device, dimension=e.dimension, max_tokens=e.max_tokens
        )


def _tokens(text: MeasuredText) -> int:
    return text.tokens
