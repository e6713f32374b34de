"""THE routing table: every task name and the queue it runs on. Workers and
producers (the gateway) both import it, so a name can never be routed on one
side and unknown on the other (seed 000's bug). tests/orchestrator/test_routing.py
proves every routed name is a registered task and every task has a route."""

from __future__ import annotations

CPU_QUEUE = "cpu_queue"  # parsing, chunking, storing, shaping
GPU_QUEUE = "gpu_queue"  # embedding, LLM, STT, evaluation
QUEUES = (CPU_QUEUE, GPU_QUEUE)

ROUTES: dict[str, str] = {
    # resume pipeline (seed 000)
    "tasks.resume_pipeline.parse_pdf": CPU_QUEUE,
    "tasks.resume_pipeline.generate_embeddings": GPU_QUEUE,
    "tasks.resume_pipeline.store_chunks": CPU_QUEUE,
    # interview answer pipeline
    "tasks.stt.recognize": GPU_QUEUE,
    "tasks.evaluator.analyze_answer": GPU_QUEUE,
    "tasks.question_generation.generate": GPU_QUEUE,
    "tasks.question_generation.preload_model": GPU_QUEUE,
    # document pipeline (seed 002)
    "tasks.document_pipeline.parse": CPU_QUEUE,
    "tasks.document_pipeline.chunk": CPU_QUEUE,
    "tasks.document_pipeline.embed": GPU_QUEUE,
    "tasks.document_pipeline.store": CPU_QUEUE,
    # generic 4-stage AI pipeline (seeds 001/004)
    "tasks.ai_pipeline.stage1_preprocessing": CPU_QUEUE,
    "tasks.ai_pipeline.stage2_feature_extraction": GPU_QUEUE,
    "tasks.ai_pipeline.stage3_model_inference": GPU_QUEUE,
    "tasks.ai_pipeline.stage4_post_processing": CPU_QUEUE,
    # maintenance (beat)
    "tasks.maintenance.cleanup": CPU_QUEUE,
    "tasks.maintenance.redeliver_lost": CPU_QUEUE,
}


def celery_routes() -> dict[str, dict[str, str]]:
    return {name: {"queue": queue} for name, queue in ROUTES.items()}


def queue_of(task_name: str) -> str:
    try:
        return ROUTES[task_name]
    except KeyError:
        raise KeyError(f"task {task_name!r} has no route in orchestrator.routing.ROUTES") from None
