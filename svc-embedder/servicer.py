"""Maps aiworker.embedder.v1 ↔ TextEmbedder, through the runtime's dynamic
batcher: concurrent calls share model calls, each gets exactly its own vectors."""

from __future__ import annotations

import asyncio

import grpc

from aiworker.embedder.v1 import embedder_pb2, embedder_pb2_grpc
from svc_runtime.batching import DynamicBatcher
from svc_runtime.device import resolve_device
from svc_runtime.errors import Unavailable
from svc_runtime.logs import get_logger
from svc_runtime.server import ModelServicer
from svc_embedder.model import EmbeddedText, TextEmbedder, assemble
from svc_embedder.settings import EmbedderSettings

log = get_logger(__name__)

WARM_UP_TEXTS = ["warm-up: the model runs once before the service says SERVING",
                 "a second text, so a batch of two goes through the whole path"]


class EmbedderServicer(ModelServicer, embedder_pb2_grpc.EmbedderServicer):
    service_name = embedder_pb2.DESCRIPTOR.services_by_name["Embedder"].full_name

    def __init__(self, settings: EmbedderSettings) -> None:
        self.settings = settings
        self.device = resolve_device(settings.device)
        self.embedder = TextEmbedder(
            settings.model, device=self.device, half_precision=settings.half_precision,
            torch_threads=settings.torch_threads,
            max_texts_per_call=settings.max_texts_per_call, max_text_chars=settings.max_text_chars,
            model_name=settings.model_name,
        )
        self.batcher: DynamicBatcher[str, EmbeddedText] | None = None

    def register(self, server: grpc.aio.Server) -> None:
        embedder_pb2_grpc.add_EmbedderServicer_to_server(self, server)

    async def startup(self) -> None:
        s = self.settings
        batcher: DynamicBatcher[str, EmbeddedText] = DynamicBatcher(
            self.embedder.encode_batch, max_batch_size=s.max_batch_size,
            max_queue_delay_ms=s.max_queue_delay_ms, max_queued_items=s.max_queued_texts,
            metrics=self.metrics, metric_prefix="aiworker_embedder_batch", name="embedder-batcher",
        )
        await asyncio.to_thread(self.embedder.load)
        await batcher.submit(WARM_UP_TEXTS)
        # Once more at the full token window, so the first long text is not slow either.
        await batcher.submit(["warm " * (self.embedder.max_tokens or 128)])
        self.batcher = batcher
        log.info("embedder_warm", model=self.embedder.name, device=self.device, dimension=self.embedder.dimension,
                 max_tokens=self.embedder.max_tokens, torch_threads=self.embedder.compute_threads,
                 max_batch_size=s.max_batch_size,
                 max_queue_delay_ms=s.max_queue_delay_ms, max_queued_texts=s.max_queued_texts)

    async def shutdown(self) -> None:
        if self.batcher is not None:
            await self.batcher.close()

    async def Embed(self, request: embedder_pb2.EmbedRequest, context: grpc.aio.ServicerContext):
        texts = list(request.texts)
        self.embedder.validate(texts)
        if self.batcher is None:
            raise Unavailable("the embedding model is still loading; retry when health says SERVING")
        result = assemble(await self.batcher.submit(texts), request.normalize)
        return embedder_pb2.EmbedResponse(
            vectors=[embedder_pb2.Vector(values=row) for row in result.vectors.tolist()],
            dimension=self.embedder.dimension,
            model=self.embedder.name,
            truncated=result.truncated,
            max_tokens=self.embedder.max_tokens,
        )
