"""Starting and stopping every component of aiworker on one machine, in order,
each waiting until it is really ready (gRPC health SERVING, worker answering
ping, gateway /readyz 200), each logging to var/logs/<component>.log."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

from aiworker_local.infra import EmbeddedPostgres, free_port, start_redis
from aiworker_local.procs import ManagedProcess

BIN = Path(sys.executable).parent
SERVICES = {"parser": "aiworker.parser.v1.Parser", "embedder": "aiworker.embedder.v1.Embedder",
            "llm": "aiworker.llm.v1.Llm", "stt": "aiworker.stt.v1.Stt"}


class LaunchError(RuntimeError):
    def __init__(self, component: str, reason: str, log_tail: str = "") -> None:
        super().__init__(f"{component} failed to start: {reason}")
        self.component = component
        self.log_tail = log_tail


def _serving(address: str, service: str) -> bool:
    with grpc.insecure_channel(address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=2)
    return reply.status == health_pb2.HealthCheckResponse.SERVING


@dataclass
class LocalSystem:
    var_dir: Path
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str = ""
    env: dict[str, str] = field(default_factory=dict)
    processes: dict[str, ManagedProcess] = field(default_factory=dict)
    postgres: EmbeddedPostgres | None = None
    grpc_port: int = 0

    @property
    def logs(self) -> Path:
        return self.var_dir / "logs"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- start ------------------------------------------------------------------
    def start(self, say: Callable[[str], None] = print) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        self.env = self._infrastructure(say)
        self._migrate(say)
        for name in SERVICES:  # all four load their models at once
            self._spawn(name, [sys.executable, "-m", f"svc_{name}", "--port", self.env[f"AIWORKER_{name.upper()}_ADDRESS"]
                               .rsplit(":", 1)[1], "--metrics-port", "0", "--log-format", "json"])
        for name, service in SERVICES.items():
            address = self.env[f"AIWORKER_{name.upper()}_ADDRESS"]
            self._wait(name, lambda a=address, s=service: _serving(a, s), 300, "model loaded (health SERVING)")
            say(f"  {name:<9} SERVING on {address}")
        workers = {f"worker-{queue.split('_')[0]}": queue for queue in ("cpu_queue", "gpu_queue")}
        for name, queue in workers.items():
            self._spawn(name, [str(BIN / "aiworker-worker"), "--queues", queue, "--hostname", f"{name}@local"])
        self._wait_workers(list(workers), say)
        self._spawn("beat", [str(BIN / "aiworker-beat"), "--schedule", str(self.var_dir / "celerybeat-schedule")])
        self.grpc_port = free_port()
        self._spawn("gateway", [str(BIN / "aiworker-gateway"), "--host", self.host, "--port", str(self.port),
                                "--grpc-port", str(self.grpc_port)],
                    {"AIWORKER_GATEWAY_API_KEYS": self.api_key, "AIWORKER_GATEWAY_LOG_FORMAT": "json"})
        self._wait("gateway", lambda: httpx.get(f"{self.url}/readyz", timeout=5).status_code == 200, 120,
                   "/readyz 200 (services, Redis, PostgreSQL, a worker per queue)")
        say(f"  gateway   ready on {self.url} (gRPC {self.host}:{self.grpc_port})")

    def _infrastructure(self, say: Callable[[str], None]) -> dict[str, str]:
        env = {"AIWORKER_BLOB_DIR": str(self.var_dir / "blobs"), "AIWORKER_LOG_FORMAT": "json",
               "AIWORKER_TRACKING_SPOOL_DIR": str(self.var_dir / "tracking-spool"),
               "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")}
        broker = os.environ.get("AIWORKER_BROKER_URL")
        if not broker:
            proc, broker = start_redis(self.var_dir / "redis", log_path=self.logs / "redis.log")
            self.processes["redis"] = proc
            say(f"  redis     embedded at {broker}")
        else:
            say(f"  redis     {broker} (AIWORKER_BROKER_URL)")
        database = os.environ.get("AIWORKER_DATABASE_URL")
        if not database:
            self.postgres = EmbeddedPostgres(self.var_dir / "pgdata")
            try:
                database = self.postgres.start()
            except Exception as exc:  # noqa: BLE001 - pgserver raises many kinds
                raise LaunchError("postgres", str(exc)) from exc
            say(f"  postgres  embedded in {self.var_dir / 'pgdata'}")
        else:
            say("  postgres  from AIWORKER_DATABASE_URL")
        env.update({"AIWORKER_BROKER_URL": broker, "AIWORKER_DATABASE_URL": database})
        for name in SERVICES:
            env[f"AIWORKER_{name.upper()}_ADDRESS"] = f"127.0.0.1:{free_port()}"
        return env

    def _migrate(self, say: Callable[[str], None]) -> None:
        from orchestrator.db import upgrade

        try:
            upgrade(self.env["AIWORKER_DATABASE_URL"])
        except Exception as exc:  # noqa: BLE001
            raise LaunchError("migrations", str(exc).splitlines()[0]) from exc
        say("  database  migrated")

    def _spawn(self, name: str, argv: list[str], extra_env: dict[str, str] | None = None) -> None:
        env = {**self.env, **(extra_env or {})}
        self.processes[name] = ManagedProcess(name, argv, self.logs / f"{name}.log", env=env).start()

    def _wait(self, name: str, ready: Callable[[], bool], timeout: float, what: str) -> None:
        """Waits for `name`; a component started earlier that dies meanwhile is named instead
        (a worker crashing while the gateway waits for it is the worker's failure)."""

        died: list[str] = []

        def ready_or_other_died() -> bool:
            died.extend(other for other in self.dead() if other != name)
            return bool(died) or ready()

        try:
            self.processes[name].wait_until(ready_or_other_died, timeout, what)
        except (RuntimeError, TimeoutError) as exc:
            raise LaunchError(name, str(exc).splitlines()[0], self.processes[name].log_tail(20)) from None
        if died:
            proc = self.processes[died[0]]
            raise LaunchError(died[0], f"exited with {proc.proc.returncode} while {name} was starting",
                              proc.log_tail(20))

    def _wait_workers(self, names: list[str], say: Callable[[str], None]) -> None:
        from celery import Celery

        from orchestrator.app import celery_config
        from orchestrator.settings import OrchestratorSettings

        # The broker and its transport options are all a ping needs. Unvalidated on purpose: a
        # setting the workers refuse must fail in the worker (named, with its log), not here.
        settings = OrchestratorSettings.model_construct(broker_url=self.env["AIWORKER_BROKER_URL"])
        app = Celery("aiworker-local", broker=settings.broker_url)
        app.conf.broker_transport_options = celery_config(settings)["broker_transport_options"]
        try:
            for name in names:
                hostname = f"{name}@local"
                self._wait(name, lambda h=hostname: bool(app.control.ping(destination=[h], timeout=1)), 120,
                           "worker answering ping")
                say(f"  {name:<9} answering ping ({hostname})")
        finally:
            app.close()

    # -- run / stop ---------------------------------------------------------------
    def dead(self) -> list[str]:
        return [name for name, proc in self.processes.items() if not proc.alive()]

    def stop(self, say: Callable[[str], None] = print) -> None:
        # Front to back: nothing new arrives while the rest shuts down.
        for name in ("gateway", "beat", "worker-cpu", "worker-gpu", *SERVICES, "redis"):
            proc = self.processes.pop(name, None)
            if proc is not None:
                proc.stop(timeout=20)
        for proc in self.processes.values():
            proc.stop()
        self.processes.clear()
        if self.postgres is not None:
            self.postgres.stop()
            self.postgres = None
        say("stopped every component")

    def wait_forever(self, poll: float = 1.0) -> str | None:
        """Blocks until a component dies (returns its name) or KeyboardInterrupt."""
        while True:
            dead = self.dead()
            if dead:
                return dead[0]
            time.sleep(poll)
