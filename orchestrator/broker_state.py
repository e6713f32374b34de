"""What kombu's Redis transport holds right now: one list per queue and
priority level (`<queue>` for the first level, `<queue><sep><n>` for the
others), and the `unacked` hash of messages delivered to a worker and not yet
acknowledged (with acks_late: reserved, running, or waiting for a retry's ETA)."""

from __future__ import annotations

import json
from typing import Any, Iterator

import redis

from orchestrator.routing import QUEUES

UNACKED_KEY = "unacked"  # kombu's default unacked_key


def queue_keys(transport_options: dict[str, Any], queues: tuple[str, ...] = QUEUES) -> dict[str, list[str]]:
    """queue → its Redis list keys, one per priority step."""
    sep, steps = transport_options.get("sep", "\x06\x16"), transport_options.get("priority_steps", [0, 3, 6, 9])
    return {queue: [f"{queue}{sep}{step}" if step else queue for step in steps] for queue in queues}


def message_headers(client: redis.Redis, transport_options: dict[str, Any],
                    queues: tuple[str, ...] = QUEUES) -> Iterator[dict[str, Any]]:
    """The headers (task id, name, pipeline ids) of every message queued or unacknowledged."""
    for keys in queue_keys(transport_options, queues).values():
        for key in keys:
            for raw in client.lrange(key, 0, -1):
                headers = _headers(raw)
                if headers is not None:
                    yield headers
    for raw in client.hvals(UNACKED_KEY):
        try:
            message = json.loads(raw)[0]
        except (ValueError, IndexError, TypeError):
            continue
        if isinstance(message, dict) and isinstance(message.get("headers"), dict):
            yield message["headers"]


def _headers(raw: bytes) -> dict[str, Any] | None:
    try:
        message = json.loads(raw)
    except ValueError:
        return None
    headers = message.get("headers") if isinstance(message, dict) else None
    return headers if isinstance(headers, dict) else None
