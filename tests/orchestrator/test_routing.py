"""One routing table, by construction: a task's name and queue are declared once,
beside its code; the routes, the registry and every registered task agree; each
task name literal occurs in exactly one source file; queues have their own bindings
(docs/decisions/0006-one-routing-table-from-task-declarations.md)."""

from __future__ import annotations

import re
from pathlib import Path

from orchestrator import keys
from orchestrator.assembly import tracked_app
from orchestrator.broker.routing import CPU_QUEUE, GPU_QUEUE, QUEUES
from orchestrator.pipelines.declarations import DECLARED, queue_of, routes
from orchestrator.pipelines.registry import PIPELINES
from orchestrator.settings import OrchestratorSettings

ROOT = Path(__file__).resolve().parents[2]
# Product code (tests may name tasks in their assertions; docs/reference/pipelines.md is generated).
SOURCE_DIRS = ("orchestrator", "gateway", "deploy", "bench", "svc-runtime", "svc-parser", "svc-embedder", "svc-llm")
TASK_NAME = re.compile(r"""["'](tasks\.[a-z_0-9]+\.[a-z_0-9]+)["']""")


def registered_task_names(app) -> set[str]:
    return {name for name in app.tasks if not name.startswith("celery.")}


def test_every_route_is_a_registered_task_and_every_task_has_a_route():
    app = tracked_app(OrchestratorSettings())
    assert set(routes()) == registered_task_names(app) == set(DECLARED)
    assert {name: route["queue"] for name, route in app.conf.task_routes.items()} == routes()
    for name in registered_task_names(app):
        assert app.tasks[name].queue == queue_of(name)


def test_routes_go_to_known_queues_and_heavy_work_goes_to_gpu():
    assert set(routes().values()) <= set(QUEUES)
    for name in (
        "tasks.resume_pipeline.generate_embeddings",
        "tasks.question_generation.generate",
        "tasks.question_generation.preload_model",
        "tasks.stt.recognize",
        "tasks.evaluator.analyze_answer",
    ):
        assert queue_of(name) == GPU_QUEUE
    assert queue_of("tasks.resume_pipeline.parse_pdf") == CPU_QUEUE


def test_every_pipeline_stage_is_a_declared_task():
    for spec in PIPELINES.values():
        for stage in spec.stages:
            assert DECLARED[stage.name] is stage, f"{spec.name}: stage {stage.name} is not declared"


def test_beat_schedule_is_derived_from_the_declarations():
    settings = OrchestratorSettings(lost_task_check_seconds=7, cleanup_interval_seconds=99)
    schedule = tracked_app(settings).conf.beat_schedule
    assert schedule["tasks.maintenance.redeliver_lost"]["schedule"] == 7
    assert schedule["tasks.maintenance.redeliver_lost"]["options"] == {"expires": 7}
    assert schedule["tasks.maintenance.cleanup"]["schedule"] == 99
    assert {entry["task"] for entry in schedule.values()} <= set(DECLARED)


def test_each_task_name_literal_occurs_in_exactly_one_source_file():
    files_of: dict[str, set[str]] = {}
    for folder in SOURCE_DIRS:
        for path in (ROOT / folder).rglob("*.py"):
            for name in TASK_NAME.findall(path.read_text(encoding="utf-8")):
                files_of.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    assert set(DECLARED) <= set(files_of), "every declared task is found by the scan"
    repeated = {name: sorted(files) for name, files in files_of.items() if len(files) > 1}
    assert repeated == {}


def test_each_queue_has_its_own_exchange_and_binding():
    """A queue bound to another queue's exchange would receive its messages too."""
    app = tracked_app(OrchestratorSettings())
    declared = {queue.name: queue for queue in app.conf.task_queues}
    assert set(declared) == set(QUEUES)
    for name, queue in declared.items():
        assert queue.exchange.name == name and queue.routing_key == name and queue.exchange.type == "direct"
    assert len({queue.exchange.name for queue in declared.values()}) == len(QUEUES)


def test_app_uses_seed_003_settings():
    conf = tracked_app(OrchestratorSettings()).conf
    assert conf.task_serializer == "json" and conf.accept_content == ["json"]
    assert conf.enable_utc and conf.timezone == "UTC"
    assert conf.task_acks_late and conf.task_reject_on_worker_lost and conf.task_track_started
    assert conf.worker_prefetch_multiplier == 1 and conf.result_extended
    assert (conf.task_soft_time_limit, conf.task_time_limit) == (540, 600)
    assert conf.broker_transport_options["visibility_timeout"] > conf.task_time_limit
    assert conf.worker_send_task_events


def test_binding_key_names_are_kombus():
    assert keys.binding_table(CPU_QUEUE) == "_kombu.binding.cpu_queue"
