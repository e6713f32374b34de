"""What a worker process's tasks use, created lazily in that process (after
the pool forked it): gRPC clients, the blob store, Redis, PostgreSQL."""

from __future__ import annotations

import os
from functools import cached_property

import redis

from orchestrator.blobs import BlobStore
from orchestrator.clients import ChannelPool, EmbedderClient, LlmClient, ParserClient, SttClient
from orchestrator.settings import OrchestratorSettings


class Resources:
    def __init__(self, settings: OrchestratorSettings) -> None:
        self.settings = settings
        self.channels = ChannelPool(settings.max_message_bytes)
        self._redis: tuple[int, redis.Redis] | None = None

    @cached_property
    def blobs(self) -> BlobStore:
        return BlobStore(self.settings.blob_dir, self.settings.max_blob_bytes)

    @property
    def redis(self) -> redis.Redis:
        if self._redis is None or self._redis[0] != os.getpid():
            client = redis.Redis.from_url(self.settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
            self._redis = (os.getpid(), client)
        return self._redis[1]

    def parser(self) -> ParserClient:
        return ParserClient(self.channels.get(self.settings.parser_address))

    def embedder(self) -> EmbedderClient:
        return EmbedderClient(self.channels.get(self.settings.embedder_address))

    def llm(self) -> LlmClient:
        return LlmClient(self.channels.get(self.settings.llm_address))

    def stt(self) -> SttClient:
        return SttClient(self.channels.get(self.settings.stt_address))
