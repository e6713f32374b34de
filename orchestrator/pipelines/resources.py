"""What a worker process's tasks use, created lazily in that process (after
the pool forked it): gRPC clients, the blob store, Redis, PostgreSQL."""

from __future__ import annotations

import os
from functools import cached_property
from typing import TypeVar

import redis

from orchestrator.clients import ChannelPool, ServiceClient
from orchestrator.settings import OrchestratorSettings
from orchestrator.storage.blobs import BlobStore, blob_store_for

C = TypeVar("C", bound=ServiceClient)


class Resources:
    def __init__(self, settings: OrchestratorSettings) -> None:
        self.settings = settings
        self.channels = ChannelPool(
            settings.max_message_bytes, settings.grpc_keepalive_seconds, settings.grpc_keepalive_timeout_seconds
        )
        self._redis: tuple[int, redis.Redis] | None = None
        self._clients: dict[type[ServiceClient], ServiceClient] = {}

    @cached_property
    def blobs(self) -> BlobStore:
        return blob_store_for(self.settings)

    @property
    def redis(self) -> redis.Redis:
        if self._redis is None or self._redis[0] != os.getpid():
            client = redis.Redis.from_url(self.settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
            self._redis = (os.getpid(), client)
        return self._redis[1]

    def client(self, kind: type[C]) -> C:
        """A client of `kind`'s service, on this process's channel to its address."""
        channel = self.channels.get(self.settings.address_of(kind.service.name))
        client = self._clients.get(kind)
        if client is None or client.channel is not channel:  # first use, or a new channel (after a fork)
            client = self._clients[kind] = kind(channel)
        return client  # type: ignore[return-value]
