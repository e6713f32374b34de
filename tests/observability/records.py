"""Tracking records as the signal handlers build them (orchestrator/tracking/
events.py), for writing rows with chosen times through the real writer."""

from __future__ import annotations

import uuid
from typing import Any

from orchestrator.pipelines.registry import PIPELINES
from orchestrator.storage.db.engine import engine_for
from orchestrator.tracking.recording.writer import write_records
from orchestrator.tracking.states import FAILURE, PENDING, RETRY, STARTED, SUCCESS, rank


class Run:
    """One submitted pipeline of the registry: its publish and its stages' events."""

    def __init__(self, pipeline: str, at: float) -> None:
        self.spec = PIPELINES[pipeline]
        self.name = pipeline
        self.at = at
        self.id = str(uuid.uuid4())
        self.task_ids = [str(uuid.uuid4()) for _ in self.spec.stages]

    def queue(self, stage: int) -> str:
        return self.spec.stages[stage].queue

    def submitted(self) -> list[dict[str, Any]]:
        """The producer's publish: the pipeline row, and a PENDING row per stage (its plan)."""
        pending = [
            {
                "kind": "task",
                "task_id": task_id,
                "task_name": stage.name,
                "status": PENDING,
                "rank": 0,
                "at": self.at,
                "queue": stage.queue,
                "root_task_id": self.task_ids[0],
                "parent_task_id": self.task_ids[index - 1] if index else None,
                "pipeline_id": self.id,
                "pipeline": self.name,
                "stage_index": index,
                "chain_total": len(self.task_ids),
            }
            for index, (task_id, stage) in enumerate(zip(self.task_ids, self.spec.stages))
        ]
        stages = [
            {"stage_index": r["stage_index"], "task_name": r["task_name"], "task_id": r["task_id"]} for r in pending
        ]
        head = {
            "kind": "pipeline",
            "pipeline_id": self.id,
            "pipeline": self.name,
            "request_id": self.id,
            "root_task_id": self.task_ids[0],
            "stage_count": len(stages),
            "at": self.at,
            "stages": stages,
        }
        return [head, *pending]

    def event(self, stage: int, status: str, at: float, attempt: int = 0, **fields: Any) -> dict[str, Any]:
        event = {
            "kind": "task",
            "task_id": self.task_ids[stage],
            "task_name": self.spec.stages[stage].name,
            "status": status,
            "rank": rank(status, attempt),
            "at": at,
            "pipeline_id": self.id,
            "stage_index": stage,
            "worker": "w1",
        }
        if status == STARTED:
            event.update(retry_count=attempt, queue=self.queue(stage))
        elif status == RETRY:
            event.update(retry_count=attempt + 1, retry_reason="UNAVAILABLE")
        elif status == SUCCESS:
            event.update(result={"stage": stage}, runtime=0.01)
        elif status == FAILURE:
            event.update(error_type="ServiceCallError", error_message="bad input")
        event.update(fields)
        return event

    def ran(self, stage: int, started: float, ended: float, status: str = SUCCESS) -> list[dict[str, Any]]:
        return [self.event(stage, STARTED, started), self.event(stage, status, ended)]


def task(queue: str, at: float) -> dict[str, Any]:
    """A task outside any pipeline, published."""
    return {
        "kind": "task",
        "task_id": str(uuid.uuid4()),
        "task_name": "tasks.maintenance.cleanup",
        "status": PENDING,
        "rank": 0,
        "at": at,
        "queue": queue,
    }


def later(record: dict[str, Any], status: str, at: float, **fields: Any) -> dict[str, Any]:
    """A later event of the task `record` published."""
    return {**record, "status": status, "rank": rank(status, 0), "at": at, "worker": "w1", **fields}


def write(database_url: str, records: list[dict[str, Any]]) -> None:
    with engine_for(database_url).begin() as conn:
        write_records(conn, records)
