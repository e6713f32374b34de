"""Seed 000's lesson: the one routing table and the registered tasks agree."""

from orchestrator.app import create_app
from orchestrator.pipelines import PIPELINES
from orchestrator.routing import CPU_QUEUE, GPU_QUEUE, QUEUES, ROUTES, queue_of
from orchestrator.settings import OrchestratorSettings


def registered_task_names(app) -> set[str]:
    return {name for name in app.tasks if not name.startswith("celery.")}


def test_every_route_is_a_registered_task_and_every_task_has_a_route():
    app = create_app(OrchestratorSettings())
    assert set(ROUTES) == registered_task_names(app)


def test_routes_go_to_known_queues_and_heavy_work_goes_to_gpu():
    assert set(ROUTES.values()) <= set(QUEUES)
    for name in ("tasks.resume_pipeline.generate_embeddings", "tasks.question_generation.generate",
                 "tasks.question_generation.preload_model", "tasks.stt.recognize", "tasks.evaluator.analyze_answer"):
        assert queue_of(name) == GPU_QUEUE
    assert queue_of("tasks.resume_pipeline.parse_pdf") == CPU_QUEUE


def test_every_pipeline_stage_is_routed():
    for spec in PIPELINES.values():
        for stage in spec.stages:
            assert stage in ROUTES, f"{spec.name}: stage {stage} has no route"


def test_app_uses_seed_003_settings():
    conf = create_app(OrchestratorSettings()).conf
    assert conf.task_serializer == "json" and conf.accept_content == ["json"]
    assert conf.enable_utc and conf.timezone == "UTC"
    assert conf.task_acks_late and conf.task_reject_on_worker_lost and conf.task_track_started
    assert conf.worker_prefetch_multiplier == 1 and conf.result_extended
    assert (conf.task_soft_time_limit, conf.task_time_limit) == (540, 600)
    assert conf.broker_transport_options["visibility_timeout"] > conf.task_time_limit
    assert conf.worker_send_task_events
