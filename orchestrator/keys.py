"""Every Redis key aiworker reads or writes, in one place (kombu's own keys
included, for the code that reads the broker's state).

    aiworker:pipeline:<pipeline_id>   a pipeline's live record (hash): its plan (pipeline, stage_count,
                                      stages, created), the running stage's progress (stage,
                                      status, progress, message, ...) and each task's live state
                                      (`t:<task_id>`: JSON), until PostgreSQL has it all
    aiworker:task:<task_id>           a task's live status (hash)
    aiworker:submission:<pipeline_id> what a pipeline was submitted with (first stage's input, priority)
    aiworker:beat:lock                held by the one beat that sends the schedule (orchestrator.broker.beat)
    aiworker:redelivery:lock          held while a lost-stage sweep runs (orchestrator.recovery)
    aiworker:revoked                  cancelled task ids (sorted set, scored by expiry), for workers
                                      started after the cancel (orchestrator.broker.revokes)
    aiworker:exporter:marks           the metrics exporter's high-water marks (orchestrator.exporter.server)
    aiworker:tracking:outbox          tracking events on their way to PostgreSQL (a stream; the setting
                                      AIWORKER_TRACKING_OUTBOX may rename it); `<outbox>:dead` dead letters
    unacked, <queue>[:<priority>]     kombu's Redis transport: delivered-not-acked, and the queues
    _kombu.binding.<exchange>         kombu's binding table of an exchange (queue ↔ routing key)
"""

from __future__ import annotations

from typing import Any

PREFIX = "aiworker:"
PIPELINE_LIVE_PREFIX = f"{PREFIX}pipeline:"
TASK_LIVE_PREFIX = f"{PREFIX}task:"
SUBMISSION_PREFIX = f"{PREFIX}submission:"
DEFAULT_OUTBOX = f"{PREFIX}tracking:outbox"
BEAT_LOCK = f"{PREFIX}beat:lock"
REDELIVERY_LOCK = f"{PREFIX}redelivery:lock"
REVOKED = f"{PREFIX}revoked"
EXPORTER_MARKS = f"{PREFIX}exporter:marks"  # the metrics exporter's high-water marks (hash)
DEAD_LETTER_SUFFIX = ":dead"

UNACKED = "unacked"  # kombu's default unacked_key
UNACKED_INDEX = "unacked_index"  # kombu's delivery times of the unacked messages
BINDING_PREFIX = "_kombu.binding."


def pipeline_live(pipeline_id: str) -> str:
    return f"{PIPELINE_LIVE_PREFIX}{pipeline_id}"


def pipeline_live_pattern() -> str:
    return f"{PIPELINE_LIVE_PREFIX}*"


def task_live(task_id: str) -> str:
    return f"{TASK_LIVE_PREFIX}{task_id}"


def submission(pipeline_id: str) -> str:
    return f"{SUBMISSION_PREFIX}{pipeline_id}"


def dead_letters(outbox: str) -> str:
    return f"{outbox}{DEAD_LETTER_SUFFIX}"


def binding_table(exchange: str) -> str:
    return f"{BINDING_PREFIX}{exchange}"


def queue_lists(queue: str, transport_options: dict[str, Any]) -> list[str]:
    """kombu's Redis lists of one queue, one per priority step: `<queue>` for the
    first step, `<queue><sep><step>` for the others."""
    sep, steps = transport_options.get("sep", "\x06\x16"), transport_options.get("priority_steps", [0, 3, 6, 9])
    return [f"{queue}{sep}{step}" if step else queue for step in steps]
