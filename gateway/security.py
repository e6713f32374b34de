"""API keys: only hashes are kept; a presented key is hashed and compared in
constant time against every stored hash. Keys are never logged, only their id."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

_ENTRY = re.compile(r"^([A-Za-z0-9_.-]{1,64}):([0-9a-f]{64})$")


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    """A random key for a person or a service (43 URL-safe characters)."""
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class ApiKeyring:
    entries: tuple[tuple[str, str], ...]  # (key id, sha256 hex of the key)

    @classmethod
    def parse(cls, items: list[str]) -> ApiKeyring:
        entries = []
        for item in items:
            match = _ENTRY.match(item)
            if match:
                entries.append((match.group(1), match.group(2)))
            else:  # a plain key: keep only its hash
                digest = hash_key(item)
                entries.append((digest[:8], digest))
        return cls(tuple(entries))

    def identify(self, presented: str | None) -> str | None:
        """The key id of `presented`, or None. Compares against every entry."""
        if not presented:
            return None
        digest = hash_key(presented)
        found = None
        for key_id, stored in self.entries:
            if hmac.compare_digest(stored, digest):
                found = key_id
        return found


def presented_key(authorization: str | None, x_api_key: str | None) -> str | None:
    """The key from `Authorization: Bearer <key>` or `X-API-Key: <key>`."""
    if x_api_key:
        return x_api_key.strip()
    if authorization and authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    return None
