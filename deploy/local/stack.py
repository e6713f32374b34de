"""The whole back end as processes, for end-to-end tests and evaluations: the four
model services, one worker per queue, Redis, PostgreSQL (migrated), a blob folder,
and a caller-side Celery app configured exactly like the workers."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from celery import Celery

from aiworker_local.procs import ManagedProcess
from aiworker_local.services import RunningService, start_service
from aiworker_local.workers import orchestrator_env, start_worker
from orchestrator.assembly import tracked_app
from orchestrator.pipelines.submission import SubmittedPipeline, submit
from orchestrator.settings import OrchestratorSettings
from orchestrator.storage.db import upgrade
from orchestrator.tracking.states import FAILURE, REVOKED, SUCCESS
from svc_runtime.catalogue import SERVICES


@dataclass
class Stack:
    log_dir: Path
    redis_url: str
    postgres_url: str
    blob_dir: Path
    services: dict[str, RunningService] = field(default_factory=dict)
    workers: dict[str, ManagedProcess] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    app: Celery | None = None

    @property
    def settings(self) -> OrchestratorSettings:
        return self.app.aiworker.settings

    def start(self, **overrides: Any) -> Stack:
        for kind in SERVICES:
            if kind not in self.services:
                self.services[kind] = start_service(kind, self.log_dir)
        self.env = orchestrator_env(
            self.redis_url,
            self.postgres_url,
            self.blob_dir,
            {k: s.address for k, s in self.services.items()},
            **overrides,
        )
        upgrade(self.postgres_url)
        self.app = make_app(self.env)
        self.workers["cpu"] = start_worker(self.app, "cpu_queue", self.env, self.log_dir, "cpu")
        self.workers["gpu"] = start_worker(self.app, "gpu_queue", self.env, self.log_dir, "gpu", concurrency=4)
        return self

    def stop(self) -> None:
        """The workers at once, then the services at once (each waits out its own shutdown)."""
        for group in (list(self.workers.values()), list(self.services.values())):
            with ThreadPoolExecutor(max_workers=max(len(group), 1)) as pool:
                list(pool.map(lambda proc: proc.stop(), group))

    # -- what callers use ---------------------------------------------------
    def submit(self, name: str, payload: dict[str, Any], **kwargs: Any) -> SubmittedPipeline:
        return submit(self.app, name, payload, **kwargs)

    def put_blob(self, data: bytes) -> str:
        return self.app.aiworker.blobs.put(data)

    def wait(self, submitted: SubmittedPipeline, timeout: float = 180) -> list[Any]:
        """Waits until every stage is terminal or one failed; returns the AsyncResults."""
        results = [self.app.AsyncResult(t) for t in submitted.task_ids]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = [r.state for r in results]
            if all(s == SUCCESS for s in states) or FAILURE in states or REVOKED in states:
                return results
            time.sleep(0.2)
        raise TimeoutError(
            f"pipeline {submitted.name} {submitted.pipeline_id} not done after {timeout}s: {[r.state for r in results]}"
        )


def make_app(env: dict[str, str]) -> Celery:
    """A producer-side app built from the same AIWORKER_* values the workers get."""
    fields = {key.removeprefix("AIWORKER_").lower(): value for key, value in env.items()}
    return tracked_app(OrchestratorSettings(**fields), producer=True)
