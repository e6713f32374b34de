"""Finding and re-sending the messages the broker lost.

Redis's BRPOP removes a message from its queue before the worker records it
as unacknowledged; a worker killed in between (SIGKILL, OOM) loses it for
good, and its pipeline waits forever (kombu's Redis transport has no reliable
move). Tracking knows every stage from its first publish, so beat's periodic
`tasks.maintenance.redeliver_lost` looks for stages that should be queued or
running but are nowhere:

- tracked PENDING (or RETRY: a retry's message can be lost the same way) for
  longer than `lost_task_after_seconds`, the stage before it SUCCESS (or it is
  the first stage);
- no message of its pipeline in a queue or unacknowledged (with acks_late a
  reserved, running or retry-waiting task's message is in `unacked`), and its
  state in the result backend is still PENDING or RETRY (a task that ran while
  tracking lagged is STARTED or done there);
- still so a moment later (a message can be on its way to a worker).

Such a stage is sent again with the rest of its pipeline, under the same task
ids, with the input it had: the stage before it's result (result backend), or
for the first stage the submission remembered at submit time."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
import structlog
from celery import Celery
from sqlalchemy import text

from orchestrator.broker_state import message_headers
from orchestrator.db.engine import engine_for
from orchestrator.pipelines import DEFAULT_PRIORITY, PIPELINES, build, remembered_submission

log = structlog.get_logger(__name__)
CONFIRM_SECONDS = 2.0
WAITING = ("PENDING", "RETRY")  # result-backend states of a stage that should have a message somewhere

_CANDIDATES = text("""
SELECT t.task_id, t.pipeline_id, t.pipeline, t.stage_index, t.root_task_id, t.parent_task_id
FROM task_info t
WHERE t.status IN ('PENDING', 'RETRY') AND t.pipeline_id IS NOT NULL AND t.stage_index IS NOT NULL
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
    params = {"since": now - timedelta(seconds=settings.result_expires),
              "quiet_since": time.time() - settings.lost_task_after_seconds, "limit": limit}
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
    broker = redis.Redis.from_url(app.conf.broker_url, socket_timeout=10)
    try:
        headers = message_headers(broker, app.conf.broker_transport_options)
        busy = {str(h["pipeline_id"]) for h in headers if h.get("pipeline_id")}
    finally:
        broker.close()
    return [c for c in candidates
            if c.pipeline_id not in busy and app.AsyncResult(c.task_id).state in WAITING]


def redeliver(app: Celery, lost: Lost) -> list[str] | None:
    """Sends the lost stage and the ones after it again; None when its input is gone."""
    spec = PIPELINES.get(lost.pipeline)
    if spec is None:
        return None
    submission = remembered_submission(app, lost.pipeline_id) or {}
    if lost.stage_index == 0:
        payload = submission.get("payload")
    else:
        previous = app.AsyncResult(_stage_task_id(app, lost.pipeline_id, lost.stage_index - 1))
        payload = previous.result if previous.state == "SUCCESS" else None
    if payload is None:
        log.error("lost_task_input_gone", task_id=lost.task_id, pipeline_id=lost.pipeline_id,
                  stage_index=lost.stage_index)
        return None
    with engine_for(app.aiworker.settings.tracking_database_url).connect() as conn:
        later = [r.task_id for r in conn.execute(_LATER_STAGES, {"pipeline_id": lost.pipeline_id,
                                                                 "stage_index": lost.stage_index})]
    workflow, task_ids = build(spec, payload, pipeline_id=lost.pipeline_id,
                               request_id=submission.get("request_id") or lost.pipeline_id,
                               priority=submission.get("priority", DEFAULT_PRIORITY), first_stage=lost.stage_index,
                               app=app, task_ids=[lost.task_id, *later])
    # The same place in the chain: root and parent as first sent. Sent from a thread of its
    # own: Celery makes the task running in this thread (the sweep) the parent otherwise.
    _in_thread(lambda: workflow.apply_async(root_id=lost.root_task_id or lost.task_id,
                                            parent_id=lost.parent_task_id))
    log.warning("lost_task_redelivered", task_id=lost.task_id, pipeline_id=lost.pipeline_id,
                pipeline=lost.pipeline, stage_index=lost.stage_index, task_ids=task_ids)
    return task_ids


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
        return conn.execute(text(
            "SELECT task_id FROM task_info WHERE pipeline_id = :p AND stage_index = :i "
            "ORDER BY (status = 'SUCCESS') DESC, created_at DESC LIMIT 1"), {"p": pipeline_id, "i": stage_index}
        ).scalar_one()


def redeliver_lost(app: Celery) -> dict[str, Any]:
    """One sweep: what was found, re-sent, and left (input gone)."""
    found = find_lost(app)
    sent = [lost.task_id for lost in found if redeliver(app, lost) is not None]
    return {"found": len(found), "redelivered": sent, "input_gone": len(found) - len(sent)}
