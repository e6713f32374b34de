"""The queues, each declared with its own direct exchange and routing key.

`kombu.Queue(name)` without an exchange is bound by Celery to the default
exchange and routing key (the default queue's name), so two such queues share
one binding and any publisher that uses the exchange delivers to both. Here
queue, exchange and routing key share the queue's name: one binding each.

Which task runs on which queue is declared beside the task
(orchestrator.pipelines.declarations); workers and producers (the gateway) derive the
same routes from the same declarations (docs/decisions/0006-one-routing-table-from-task-declarations.md)."""

from __future__ import annotations

from kombu import Exchange, Queue

CPU_QUEUE = "cpu_queue"  # parsing, chunking, storing, shaping
GPU_QUEUE = "gpu_queue"  # embedding, LLM, STT, evaluation
QUEUES = (CPU_QUEUE, GPU_QUEUE)


def celery_queues() -> list[Queue]:
    return [Queue(name, Exchange(name, type="direct"), routing_key=name) for name in QUEUES]
