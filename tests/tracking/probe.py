"""The tracking tests' own back end: a private redis-server (broker, outbox,
live hashes: nothing shared with other tests' workers), the real parser, a
worker with the probe tasks, and PostgreSQL for tracking reached through a TCP
proxy the test can close. The embedder, LLM and STT addresses are closed ports,
so stages calling them retry UNAVAILABLE and fail."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from celery import Celery

from aiworker_local.procs import ManagedProcess
from aiworker_local.services import RunningService, start_service
from aiworker_local.stack import make_app
from aiworker_local.workers import orchestrator_env
from orchestrator.assembly import registry_queries
from orchestrator.pipelines.submission import SubmittedPipeline, submit
from orchestrator.storage.db import upgrade
from orchestrator.tracking.reading.queries import TrackingQueries
from tests.support.infra import start_redis
from tests.tracking.proxy import TcpProxy

CLOSED = "127.0.0.1:1"  # nothing listens there: UNAVAILABLE at once
MAX_RETRIES = 5


@dataclass
class Probe:
    workdir: Path
    log_dir: Path
    database_url: str  # the real one (tests read rows here)
    redis: ManagedProcess | None = None
    redis_url: str = ""
    db_proxy: TcpProxy | None = None
    parser_proxy: TcpProxy | None = None
    parser: RunningService | None = None
    worker: ManagedProcess | None = None
    env: dict[str, str] = field(default_factory=dict)
    app: Celery | None = None

    def start(self) -> Probe:
        self.redis, self.redis_url = start_redis(self.workdir / "redis")
        upgrade(self.database_url)
        url = urlsplit(self.database_url)
        tracking_url = self.database_url
        if url.port:  # TCP: tracking goes through a proxy the outage test closes
            self.db_proxy = TcpProxy(url.hostname, url.port).open()
            tracking_url = self.database_url.replace(f":{url.port}/", f":{self.db_proxy.port}/")
        self.parser = start_service("parser", self.log_dir)
        self.parser_proxy = TcpProxy("127.0.0.1", self.parser.port).open()
        self.env = orchestrator_env(
            self.redis_url,
            self.database_url,
            self.workdir / "blobs",
            {"parser": f"127.0.0.1:{self.parser_proxy.port}", "embedder": CLOSED, "llm": CLOSED, "stt": CLOSED},
            max_retries=MAX_RETRIES,
            retry_backoff_seconds=0.3,
            retry_backoff_max_seconds=1.5,
            tracking_database_url=tracking_url,
            tracking_spool_dir=self.workdir / "spool",
        )
        self.app = make_app(self.env)
        argv = [sys.executable, "-m", "tests.tracking.probe_worker", "--hostname", "probe@test"]
        self.worker = ManagedProcess(
            "worker-probe",
            argv,
            self.log_dir / "worker-probe.log",
            env=self.env,
            cwd=Path(__file__).resolve().parents[2],
        ).start()
        self.worker.wait_until(
            lambda: bool(self.app.control.inspect(destination=["probe@test"], timeout=1).ping()),
            60,
            "probe worker answering ping",
        )
        return self

    def stop(self) -> None:
        for closeable in (self.worker, self.parser, self.redis):
            if closeable is not None:
                closeable.stop()
        for proxy in (self.db_proxy, self.parser_proxy):
            if proxy is not None:
                proxy.close()

    # -- helpers -------------------------------------------------------------------
    def submit(self, name: str, payload: dict[str, Any]) -> SubmittedPipeline:
        self.app.set_current()
        return submit(self.app, name, payload)

    def send(self, name: str, *args: Any, **kwargs: Any) -> str:
        return self.app.send_task(name, args=args, kwargs=kwargs, queue="cpu_queue").id

    @property
    def queries(self) -> TrackingQueries:
        settings = self.app.aiworker.settings.model_copy(update={"tracking_database_url": self.database_url})
        return registry_queries(settings)
