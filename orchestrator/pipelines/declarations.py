"""Where a task is declared: its name, its queue and (for beat's tasks) its
schedule, written once beside its code. Everything that needs a task's name
or queue derives it from here: Celery's routes and beat schedule, the pipeline
registry (orchestrator/pipelines/registry.py refers to declarations, not to names),
tracking, docs/reference/pipelines.md.

    @stage_task("tasks.my_pipeline.parse", queue=CPU_QUEUE)
    def parse(self: StageTask, payload: dict) -> dict: ...

A declaration is registered on an app by `register_declared(app)` (create_app
calls it after importing the task modules), so several apps in one process
(tests, benchmarks) each get their own task objects."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from celery import Celery, Task

from orchestrator.broker.routing import QUEUES
from orchestrator.pipelines.stage import StageTask


@dataclass(frozen=True)
class TaskDeclaration:
    name: str
    queue: str
    run: Callable[..., Any]
    base: type[Task] = StageTask
    options: dict[str, Any] = field(default_factory=dict)
    # Beat runs it every `every(settings)` seconds; the message expires after one period
    # when `expires` (a run that waited past the next one is pointless).
    every: Callable[[Any], float] | None = None
    expires: bool = False

    @property
    def short_name(self) -> str:
        """The last part of the name (progress messages, the CLI's stage column)."""
        return self.name.rsplit(".", 1)[-1]

    def register(self, app: Celery) -> Task:
        return app.task(
            bind=True, base=self.base, name=self.name, queue=self.queue, shared=False, lazy=False, **self.options
        )(self.run)


DECLARED: dict[str, TaskDeclaration] = {}


def _declare(declaration: TaskDeclaration) -> TaskDeclaration:
    if declaration.queue not in QUEUES:
        raise ValueError(f"task {declaration.name}: unknown queue {declaration.queue!r}; known: {QUEUES}")
    known = DECLARED.get(declaration.name)
    if known is not None and known.run.__qualname__ != declaration.run.__qualname__:
        raise ValueError(f"task name {declaration.name!r} declared twice ({known.run.__qualname__})")
    DECLARED[declaration.name] = declaration
    return declaration


def stage_task(name: str, queue: str, **options: Any) -> Callable[[Callable[..., Any]], TaskDeclaration]:
    """Declares a pipeline stage (a bound StageTask) on `queue`."""
    return lambda run: _declare(TaskDeclaration(name, queue, run, options=options))


def periodic_task(
    name: str, queue: str, every: Callable[[Any], float], expires: bool = False, base: type[Task] = StageTask
) -> Callable[[Callable[..., Any]], TaskDeclaration]:
    """Declares a task beat sends every `every(settings)` seconds."""
    return lambda run: _declare(TaskDeclaration(name, queue, run, base=base, every=every, expires=expires))


def routes() -> dict[str, str]:
    """Task name → queue, for every declared task."""
    return {name: declaration.queue for name, declaration in DECLARED.items()}


def queue_of(task_name: str) -> str:
    try:
        return DECLARED[task_name].queue
    except KeyError:
        raise KeyError(f"task {task_name!r} is not declared (orchestrator.pipelines.declarations)") from None


def register_declared(app: Celery) -> None:
    """Registers every declared task the app does not have yet, and (re)derives its
    routes and beat schedule from the declarations."""
    for name, declaration in DECLARED.items():
        if name not in app.tasks:
            declaration.register(app)
    app.conf.task_routes = {name: {"queue": queue} for name, queue in routes().items()}
    settings = app.aiworker.settings
    schedule = {}
    for name, declaration in DECLARED.items():
        if declaration.every is not None:
            period = declaration.every(settings)
            schedule[name] = {
                "task": name,
                "schedule": period,
                "options": {"expires": period} if declaration.expires else {},
            }
    app.conf.beat_schedule = schedule
