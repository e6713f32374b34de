"""What kombu's Redis transport holds right now: one list per queue and
priority level, and the `unacked` hash of messages delivered to a worker and
not yet acknowledged (with acks_late: reserved, running, or waiting for a
retry's ETA). kombu LPUSHes and BRPOPs, so a list's oldest message is its last
element, and its age is now minus its `published_at` header. Key names:
orchestrator.keys."""

from __future__ import annotations

import json
import time
from typing import Any

import redis

from orchestrator import keys
from orchestrator.broker.headers import PUBLISHED_AT
from orchestrator.broker.routing import QUEUES


def queue_keys(transport_options: dict[str, Any], queues: tuple[str, ...] = QUEUES) -> dict[str, list[str]]:
    """queue → its Redis list keys, one per priority step."""
    return {queue: keys.queue_lists(queue, transport_options) for queue in queues}


def queue_depth(
    client: redis.Redis, transport_options: dict[str, Any], queues: tuple[str, ...] = QUEUES
) -> tuple[dict[str, int], int]:
    """Messages waiting per queue (all priority levels), and delivered but unacknowledged."""
    lists = queue_keys(transport_options, queues)
    with client.pipeline(transaction=False) as pipe:
        for queue in queues:
            for key in lists[queue]:
                pipe.llen(key)
        pipe.hlen(keys.UNACKED)
        sizes = pipe.execute()
    per_queue, at = {}, 0
    for queue in queues:
        per_queue[queue] = sum(sizes[at : at + len(lists[queue])])
        at += len(lists[queue])
    return per_queue, int(sizes[-1])


def queue_oldest_published(
    client: redis.Redis, transport_options: dict[str, Any], queues: tuple[str, ...] = QUEUES
) -> dict[str, float | None]:
    """queue → when its oldest waiting message was published (epoch seconds; None: empty)."""
    lists = queue_keys(transport_options, queues)
    with client.pipeline(transaction=False) as pipe:
        for queue in queues:
            for key in lists[queue]:
                pipe.lindex(key, -1)
        replies = iter(pipe.execute())
    oldest: dict[str, float | None] = {}
    for queue in queues:
        times = [t for t in (published_at(next(replies)) for _ in lists[queue]) if t is not None]
        oldest[queue] = min(times) if times else None
    return oldest


def queue_oldest_seconds(
    client: redis.Redis, transport_options: dict[str, Any], queues: tuple[str, ...] = QUEUES
) -> dict[str, float]:
    """queue → age of its oldest waiting message in seconds (0: empty)."""
    now = time.time()
    return {
        queue: round(max(now - published, 0.0), 3) if published is not None else 0.0
        for queue, published in queue_oldest_published(client, transport_options, queues).items()
    }


def published_at(raw: bytes | str | None) -> float | None:
    """The `published_at` header of a message as kombu's Redis transport stores it (None: no message, or
    one published without it)."""
    if raw is None:
        return None
    try:
        return float(json.loads(raw)["headers"][PUBLISHED_AT])
    except (ValueError, KeyError, TypeError):
        return None
