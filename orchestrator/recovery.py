"""Finding and re-sending the stages the broker lost.

Messages get lost: Redis's BRPOP removes a message from its queue before the
worker records it as unacknowledged, so a worker killed in between (SIGKILL,
OOM) loses it; a worker whose host dies or is cut off holds its running tasks'
messages until the visibility timeout (minutes); a broker restarted without
its data loses everything queued. Tracking knows every stage from its first
publish, and PostgreSQL keeps what a re-send needs (tracking.inputs), so beat's
periodic `redeliver_lost` task (declared below) looks for stages that should
be queued or running but are nowhere:

- tracked PENDING, RETRY or STARTED, unchanged for `lost_task_after_seconds`,
  the stage before it SUCCESS (or it is the first stage);
- no message of its pipeline waiting in a queue; not held by a live worker
  (none lists it as active, reserved or scheduled); not finished in the
  result backend;
- still so a moment later (a message can be on its way to a worker).

Such a stage is sent again with the rest of its pipeline, under the same task
ids and chain links, with the input it had (PostgreSQL's copy; else the result
backend's). A message of it still unacknowledged by a worker that no longer
holds it is dropped first, so the visibility timeout does not send it again.
Workers must answer `celery inspect` (the prefork pool's main process does, also
while its children work)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
import structlog
from celery import Celery, Task, states
from sqlalchemy import text

from orchestrator import keys
from orchestrator.broker.locks import Lease
from orchestrator.broker.queue_state import queue_keys
from orchestrator.broker.routing import CPU_QUEUE
from orchestrator.pipelines.declarations import periodic_task
from orchestrator.pipelines.registry import PIPELINES
from orchestrator.pipelines.submission import remembered_submission, resend_from
from orchestrator.storage.db.engine import engine_for
from orchestrator.tracking.reading.inputs import stage_input

log = structlog.get_logger(__name__)
CONFIRM_SECONDS = 2.0
INSPECT_TIMEOUT = 1.0

_CANDIDATES = text("""
SELECT t.task_id, t.pipeline_id, t.pipeline, t.stage_index, t.root_task_id, t.parent_task_id
FROM task_info t
WHERE t.status IN ('PENDING', 'RETRY', 'STARTED') AND t.pipeline_id IS NOT NULL AND t.stage_index IS NOT NULL
  AND t.created_at >= :since AND t.status_at < :quiet_since
  AND (t.stage_index = 0 OR EXISTS (
        SELECT 1 FROM task_info p WHERE p.pipeline_id = t.pipeline_id AND p.stage_index = t.stage_index - 1
          AND p.status = 'SUCCESS'))
ORDER BY t.created_at
LIMIT :limit
""")
_LATER_STAGES = text("""
SELECT DISTINCT ON (stage_index) stage_index, task_id FROM task_info
WHERE pipeline_id = :pipeline_id AND stage_index > :stage_index
ORDER BY stage_index, created_at DESC
""")


@dataclass(frozen=True)
class Lost:
    task_id: str
    pipeline_id: str
    pipeline: str
    stage_index: int
    root_task_id: str | None = None
    parent_task_id: str | None = None


def find_lost(app: Celery, limit: int = 100) -> list[Lost]:
    """Stages that are nowhere (see the module's doc), confirmed twice."""
    settings = app.aiworker.settings
    now = datetime.now(UTC)
    params = {
        "since": now - timedelta(days=settings.task_retention_days),
        "quiet_since": time.time() - settings.lost_task_after_seconds,
        "limit": limit,
    }
    with engine_for(settings.tracking_database_url).connect() as conn:
        candidates = [Lost(**r) for r in conn.execute(_CANDIDATES, params).mappings()]
    if not candidates:
        return []
    absent = _nowhere(app, candidates)
    if absent:
        time.sleep(CONFIRM_SECONDS)
        absent = _nowhere(app, absent)
    return absent


def _nowhere(app: Celery, candidates: list[Lost]) -> list[Lost]:
    held = held_by_workers(app, [c.task_id for c in candidates])
    broker = redis.Redis.from_url(app.conf.broker_url, socket_timeout=10)
    try:
        queued = {str(h["pipeline_id"]) for h in queued_headers(broker, app) if h.get("pipeline_id")}
    finally:
        broker.close()
    return [
        c
        for c in candidates
        if c.pipeline_id not in queued
        and c.task_id not in held
        and app.AsyncResult(c.task_id).state not in states.READY_STATES
    ]


def held_by_workers(app: Celery, task_ids: list[str]) -> set[str]:
    """Which of these tasks a live worker holds: running, reserved, or waiting for an ETA
    (one broadcast: `celery inspect query_task`)."""
    held: set[str] = set()
    # A connection of its own: a pooled one that outlived a broker restart can hang the
    # replies' collection (kombu's Redis transport), and with it the sweep.
    with app.connection_for_write() as connection:
        replies = app.control.inspect(timeout=INSPECT_TIMEOUT, connection=connection).query_task(*task_ids)
    for found in (replies or {}).values():
        held.update(found)
    return held


def queued_headers(client: redis.Redis, app: Celery) -> list[dict[str, Any]]:
    """The headers of every message waiting in a queue (not yet delivered)."""
    out = []
    for lists in queue_keys(app.conf.broker_transport_options).values():
        for key in lists:
            for raw in client.lrange(key, 0, -1):
                try:
                    headers = json.loads(raw).get("headers")
                except (ValueError, AttributeError):
                    continue
                if isinstance(headers, dict):
                    out.append(headers)
    return out


def drop_orphan_deliveries(app: Celery, task_id: str) -> int:
    """Removes the unacknowledged deliveries of a task no live worker holds, so kombu's
    visibility-timeout sweep does not send it a second time after our re-send."""
    broker = redis.Redis.from_url(app.conf.broker_url, socket_timeout=10)
    dropped = 0
    try:
        for tag, raw in broker.hgetall(keys.UNACKED).items():
            try:
                headers = json.loads(raw)[0].get("headers") or {}
            except (ValueError, IndexError, AttributeError, TypeError):
                continue
            if headers.get("id") == task_id:
                with broker.pipeline() as pipe:
                    pipe.hdel(keys.UNACKED, tag)
                    pipe.zrem(keys.UNACKED_INDEX, tag)
                    pipe.execute()
                dropped += 1
    finally:
        broker.close()
    return dropped


def redeliver(app: Celery, lost: Lost) -> list[str] | None:
    """Sends the lost stage and the ones after it again; None when its input is gone."""
    spec = PIPELINES.get(lost.pipeline)
    if spec is None:
        return None
    settings = app.aiworker.settings
    kept = stage_input(engine_for(settings.tracking_database_url), lost.pipeline_id, lost.stage_index)
    payload = kept.payload if kept else None
    if payload is None:  # not in PostgreSQL (an output too large to track): Redis's copies
        payload = _input_from_redis(app, lost)
    if payload is None:
        log.error(
            "lost_task_input_gone", task_id=lost.task_id, pipeline_id=lost.pipeline_id, stage_index=lost.stage_index
        )
        return None
    with engine_for(settings.tracking_database_url).connect() as conn:
        later = [
            r.task_id
            for r in conn.execute(_LATER_STAGES, {"pipeline_id": lost.pipeline_id, "stage_index": lost.stage_index})
        ]
    dropped = drop_orphan_deliveries(app, lost.task_id)
    task_ids: list[str] = []
    # The same place in the chain: root and parent as first sent. Sent from a thread of its
    # own: Celery makes the task running in this thread (the sweep) the parent otherwise.
    _in_thread(
        lambda: task_ids.extend(
            resend_from(
                app,
                spec,
                lost.pipeline_id,
                lost.stage_index,
                payload,
                task_ids=[lost.task_id, *later],
                root_id=lost.root_task_id or lost.task_id,
                parent_id=lost.parent_task_id,
                priority=kept.priority if kept else None,
                request_id=kept.request_id if kept else None,
                traceparent=kept.traceparent if kept else None,
            )
        )
    )
    log.warning(
        "lost_task_redelivered",
        task_id=lost.task_id,
        pipeline_id=lost.pipeline_id,
        pipeline=lost.pipeline,
        stage_index=lost.stage_index,
        task_ids=task_ids,
        orphan_deliveries_dropped=dropped,
    )
    return task_ids


def _input_from_redis(app: Celery, lost: Lost) -> Any:
    if lost.stage_index == 0:
        return (remembered_submission(app, lost.pipeline_id) or {}).get("payload")
    previous = app.AsyncResult(_stage_task_id(app, lost.pipeline_id, lost.stage_index - 1))
    return previous.result if previous.state == states.SUCCESS else None


def _in_thread(fn: Any) -> None:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            errors.append(exc)

    thread = threading.Thread(target=run, name="redeliver")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


def _stage_task_id(app: Celery, pipeline_id: str, stage_index: int) -> str:
    """The newest task of a stage (a retried pipeline has several)."""
    with engine_for(app.aiworker.settings.tracking_database_url).connect() as conn:
        return conn.execute(
            text(
                "SELECT task_id FROM task_info WHERE pipeline_id = :p AND stage_index = :i "
                "ORDER BY (status = 'SUCCESS') DESC, created_at DESC LIMIT 1"
            ),
            {"p": pipeline_id, "i": stage_index},
        ).scalar_one()


def sweep(app: Celery) -> dict[str, Any]:
    """One sweep: what was found, re-sent, and left (input gone). Never two at once
    (a sweep that waited in a queue could meet the next one): the second one skips."""
    settings = app.aiworker.settings
    lease = Lease(app.aiworker.redis, keys.REDELIVERY_LOCK, max(60.0, 4 * settings.lost_task_check_seconds))
    if not lease.hold():
        return {"found": 0, "redelivered": [], "input_gone": 0, "skipped": f"a sweep runs ({lease.holder()})"}
    try:
        return _sweep(app)
    finally:
        lease.release()


def _sweep(app: Celery) -> dict[str, Any]:
    found = find_lost(app)
    sent = [lost.task_id for lost in found if redeliver(app, lost) is not None]
    return {"found": len(found), "redelivered": sent, "input_gone": len(found) - len(sent)}


@periodic_task(
    "tasks.maintenance.redeliver_lost",
    queue=CPU_QUEUE,
    every=lambda settings: settings.lost_task_check_seconds,
    expires=True,  # a sweep that waited in the queue past the next one is pointless
    base=Task,
)
def redeliver_lost(self: Task) -> dict[str, Any]:
    return sweep(self.app)
