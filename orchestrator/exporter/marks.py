"""High-water marks: for each stream of rows (tasks by created_at, started_at,
completed_at; pipelines by finished_at) the last (time, row key) observed, so a
row is counted once. They are kept in Redis after every poll, so a restarted
exporter goes on from there: the rows of its downtime are counted once, by the
new process, none twice (within `catch_up_seconds`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import redis

from orchestrator import keys

MARKS_KEY = keys.EXPORTER_MARKS  # hash: stream name -> {"at": ISO time, "key": row key or null}


@dataclass(frozen=True)
class Mark:
    """Rows up to (at, key) are observed; key None: every row at `at` is."""

    at: datetime
    key: int | str | None = None

    def dumps(self) -> str:
        return json.dumps({"at": self.at.isoformat(), "key": self.key})

    @classmethod
    def loads(cls, raw: str | bytes) -> Mark:
        value = json.loads(raw)
        return cls(datetime.fromisoformat(value["at"]), value.get("key"))


class MarkStore:
    def __init__(self, client: redis.Redis, key: str = MARKS_KEY) -> None:
        self.client = client
        self.key = key

    def load(self, streams: tuple[str, ...], start: datetime, oldest: datetime) -> dict[str, Mark]:
        """The saved marks, none older than `oldest`; `start` for a stream never saved."""
        saved = self.client.hgetall(self.key)
        marks = {}
        for stream in streams:
            raw = saved.get(stream.encode())
            mark = Mark.loads(raw) if raw else Mark(start)
            marks[stream] = mark if mark.at >= oldest else Mark(oldest)
        return marks

    def save(self, marks: dict[str, Mark]) -> None:
        self.client.hset(self.key, mapping={stream: mark.dumps() for stream, mark in marks.items()})
