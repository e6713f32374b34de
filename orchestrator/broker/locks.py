"""A lease in Redis: one holder at a time, renewed while it works, expiring
when the holder dies (so another takes over), released only by its holder."""

from __future__ import annotations

import os
import socket
import uuid

import redis

# Renew or release only while the value is still ours (another may hold it after an expiry).
_RENEW = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0"
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


class Lease:
    def __init__(self, client: redis.Redis, key: str, ttl_seconds: float) -> None:
        self.client = client
        self.key = key
        self.ttl_ms = int(ttl_seconds * 1000)
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    def hold(self) -> bool:
        """Takes the lease, or renews it when ours; False when another holds it."""
        if self.client.eval(_RENEW, 1, self.key, self.owner, self.ttl_ms):
            return True
        return bool(self.client.set(self.key, self.owner, nx=True, px=self.ttl_ms))

    def release(self) -> None:
        self.client.eval(_RELEASE, 1, self.key, self.owner)

    def holder(self) -> str | None:
        value = self.client.get(self.key)
        return value.decode() if value else None
