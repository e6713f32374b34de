"""A stage's input, from PostgreSQL: the pipeline's first input for stage 0, the
previous stage's whole output for the others, with the priority and request id
the pipeline was submitted with. What a re-send needs (tracking.recovery, the
gateway's retry), so it works after the broker lost its memory."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, text

NOT_KEPT = "not_kept"  # events.succeeded's marker of an output too large to track

_INPUT = text("""
SELECT p.input, p.priority, p.request_id, p.traceparent,
       (SELECT t.output FROM task_info t
        WHERE t.pipeline_id = p.pipeline_id AND t.stage_index = :stage - 1 AND t.status = 'SUCCESS'
        ORDER BY t.created_at DESC LIMIT 1) AS previous_output
FROM pipeline_info p WHERE p.pipeline_id = :pipeline_id
""")


@dataclass(frozen=True)
class StageInput:
    payload: Any  # None: not kept here (ask the result backend)
    priority: int | None
    request_id: str | None
    traceparent: str | None = None


def stage_input(engine: Engine, pipeline_id: str, stage_index: int) -> StageInput | None:
    """None when PostgreSQL does not know the pipeline."""
    with engine.connect() as conn:
        row = conn.execute(_INPUT, {"pipeline_id": pipeline_id, "stage": stage_index}).mappings().first()
    if row is None:
        return None
    payload = row["input"] if stage_index == 0 else row["previous_output"]
    if isinstance(payload, dict) and set(payload) == {NOT_KEPT}:
        payload = None
    return StageInput(payload, row["priority"], row["request_id"], row["traceparent"])
