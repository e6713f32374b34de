"""What Redis holds right now, read at each scrape: per queue the messages
waiting (every priority list), when the oldest was published
(orchestrator.broker.queue_state), and the delivered-not-acknowledged ones (the
`unacked` hash, by routing key); the tracking outbox's entries, the age of the
oldest (a stream id is its time in ms) and its dead letters. Key names:
orchestrator.keys."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import redis

from orchestrator import keys
from orchestrator.broker.queue_state import queue_depth, queue_oldest_published
from orchestrator.exporter.metrics import Labels

UNACKED_SCAN = 1000


@dataclass
class QueueState:
    length: dict[str, int] = field(default_factory=dict)
    oldest_published: dict[str, float | None] = field(default_factory=dict)  # epoch seconds; None: empty
    unacked: dict[str, int] = field(default_factory=dict)


@dataclass
class OutboxState:
    entries: int
    dead_letters: int
    oldest: float | None  # epoch seconds of the oldest entry; None: empty


def read_queues(
    broker: redis.Redis, transport_options: dict[str, Any], queues: tuple[str, ...], labels: Labels
) -> QueueState:
    length, _ = queue_depth(broker, transport_options, queues)
    state = QueueState(length=length, oldest_published=queue_oldest_published(broker, transport_options, queues))
    state.unacked = dict.fromkeys(queues, 0)
    for _tag, raw in broker.hscan_iter(keys.UNACKED, count=UNACKED_SCAN):
        queue = labels.queue(_routing_key(raw))
        state.unacked[queue] = state.unacked.get(queue, 0) + 1
    return state


def read_outbox(client: redis.Redis, stream: str) -> OutboxState:
    with client.pipeline(transaction=False) as pipe:
        pipe.xlen(stream)
        pipe.xlen(keys.dead_letters(stream))
        pipe.xrange(stream, count=1)
        entries, dead, first = pipe.execute()
    oldest = None
    if first:
        entry_id = first[0][0]
        entry_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
        oldest = int(entry_id.split("-")[0]) / 1000
    return OutboxState(int(entries), int(dead), oldest)


def _routing_key(raw: bytes | str) -> str | None:
    """kombu keeps [message, exchange, routing_key] per unacknowledged delivery."""
    try:
        value = json.loads(raw)
        return value[2] if isinstance(value, list) and len(value) == 3 else None
    except (ValueError, TypeError):
        return None
