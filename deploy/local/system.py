"""Starting, supervising and stopping every component of aiworker on one
machine: in order, each waiting until it is really ready (gRPC health SERVING,
worker answering ping, gateway /readyz 200), each logging to
var/logs/<component>.log; one that dies is restarted (procs.Supervisor), what
happened is also in var/logs/launcher.log. Every child inherits the launcher's
environment (AIWORKER_*, AWS_*, OTEL_*, ...) plus the addresses chosen here."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

from aiworker_local.infra import (
    DEFAULT_REDIS_PORT,
    WEED_STOP_SECONDS,
    EmbeddedPostgres,
    PortTaken,
    free_port,
    redis_answers,
    s3_answers,
    start_kept_redis,
    start_s3,
)
from aiworker_local.procs import GaveUp, ManagedProcess, Supervisor, log_tail
from orchestrator.broker.routing import QUEUES
from svc_runtime.catalogue import SERVICES

BIN = Path(sys.executable).parent
S3_BLOB_URL = "s3://aiworker/blobs"  # in the embedded S3 server (--blob-store s3)
# The pair the children sign with when AWS_* are unset (SeaweedFS then accepts any pair; when
# they are set, it inherits them as its admin identity, and the children use the same).
S3_LOCAL_DEFAULTS = {
    "AWS_ACCESS_KEY_ID": "aiworker-local",
    "AWS_SECRET_ACCESS_KEY": "aiworker-local-secret",
    "AWS_REGION": "us-east-1",
}


class LaunchError(RuntimeError):
    def __init__(self, component: str, reason: str, log_tail: str = "", log_path: Path | None = None) -> None:
        super().__init__(f"{component} failed to start: {reason}")
        self.component = component
        self.log_tail = log_tail
        self.log_path = log_path


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
    redis_port: int = DEFAULT_REDIS_PORT  # the embedded Redis's, the same every run
    blob_store: str = "folder"  # or "s3": an embedded SeaweedFS under var/s3
    env: dict[str, str] = field(default_factory=dict)
    processes: dict[str, ManagedProcess] = field(default_factory=dict)
    postgres: EmbeddedPostgres | None = None
    grpc_port: int = 0
    say: Callable[[str], None] = print
    supervisor: Supervisor = field(default_factory=Supervisor)
    _control: Any = None  # the Celery app that pings workers

    @property
    def logs(self) -> Path:
        return self.var_dir / "logs"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- start ------------------------------------------------------------------
    def start(self, say: Callable[[str], None] = print) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        self.say = self._recording(say)
        self.supervisor = Supervisor(self._recording(say, dated=True))
        self.env = self._infrastructure(self.say)
        self._migrate(self.say)
        for name, entry in SERVICES.items():  # all of them load their models at once
            address = self.env[entry.address_env]
            self._spawn(
                name,
                [sys.executable, "-m", entry.module, "--port", address.rsplit(":", 1)[1]]
                + ["--metrics-port", "0", "--log-format", "json"],
                ready=lambda a=address, s=entry.proto_service: _serving(a, s),
            )
        for name, entry in SERVICES.items():
            self._wait(name, 300, "model loaded (health SERVING)")
            self.say(f"  {name:<9} SERVING on {self.env[entry.address_env]}")
        workers = {f"worker-{queue.split('_')[0]}": queue for queue in QUEUES}
        for name, queue in workers.items():
            hostname = f"{name}@local"
            self._spawn(
                name,
                [str(BIN / "aiworker-worker"), "--queues", queue, "--hostname", hostname],
                ready=lambda h=hostname: self._pings(h),
            )
        for name in workers:
            self._wait(name, 120, "worker answering ping")
            self.say(f"  {name:<9} answering ping ({name}@local)")
        self._spawn("beat", [str(BIN / "aiworker-beat"), "--schedule", str(self.var_dir / "celerybeat-schedule")])
        self.grpc_port = free_port()
        self._spawn(
            "gateway",
            [str(BIN / "aiworker-gateway"), "--host", self.host, "--port", str(self.port)]
            + ["--grpc-port", str(self.grpc_port)],
            {"AIWORKER_GATEWAY_API_KEYS": self.api_key, "AIWORKER_GATEWAY_LOG_FORMAT": "json"},
            ready=lambda: httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200,
        )
        self._wait(
            "gateway",
            120,
            "/readyz 200 (services, Redis, PostgreSQL, a worker per queue)",
            also=lambda: httpx.get(f"{self.url}/readyz", timeout=5).status_code == 200,
        )
        self.say(f"  gateway   ready on {self.url} (gRPC {self.host}:{self.grpc_port})")

    def _recording(self, say: Callable[[str], None], dated: bool = False) -> Callable[[str], None]:
        """`say` (with the time when `dated`: what happens while serving), and the same line
        in var/logs/launcher.log."""

        def say_and_record(message: str) -> None:
            say(f"{datetime.now():%H:%M:%S} {message}" if dated else message)
            self.record(message)

        return say_and_record

    def record(self, message: str) -> None:
        with (self.logs / "launcher.log").open("a") as log:
            log.write(f"{datetime.now().isoformat(timespec='seconds')} {message.strip()}\n")

    def _infrastructure(self, say: Callable[[str], None]) -> dict[str, str]:
        env = {
            **self._blob_store(say),
            "AIWORKER_LOG_FORMAT": "json",
            "AIWORKER_TRACKING_SPOOL_DIR": str(self.var_dir / "tracking-spool"),
            "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"),
        }
        broker = os.environ.get("AIWORKER_BROKER_URL")
        if not broker:
            redis_dir = self.var_dir / "redis"
            try:
                proc, broker = start_kept_redis(redis_dir, self.redis_port, self.logs / "redis.log")
            except PortTaken as exc:
                raise LaunchError(
                    "redis", f"{exc}; stop it, or give ours another port: --redis-port N (AIWORKER_LOCAL_REDIS_PORT)"
                ) from None
            except (RuntimeError, TimeoutError) as exc:
                raise LaunchError("redis", str(exc).splitlines()[0], log_tail(self.logs / "redis.log")) from None
            self.processes["redis"] = proc
            self.supervisor.watch(proc, ready=lambda url=broker: redis_answers(url))
            say(f"  redis     embedded at {broker} (data kept in {redis_dir})")
        else:
            say(f"  redis     {broker} (AIWORKER_BROKER_URL)")
        database = os.environ.get("AIWORKER_DATABASE_URL")
        if not database:
            self.postgres = EmbeddedPostgres(self.var_dir / "pgdata")
            try:
                database = self.postgres.start()
            except Exception as exc:
                raise LaunchError("postgres", str(exc), self.postgres.log_tail(20), self.postgres.log_path) from exc
            self.supervisor.watch(self.postgres, ready=self.postgres.alive)
            say(f"  postgres  embedded in {self.var_dir / 'pgdata'}")
        else:
            say("  postgres  from AIWORKER_DATABASE_URL")
        env.update({"AIWORKER_BROKER_URL": broker, "AIWORKER_DATABASE_URL": database})
        for entry in SERVICES.values():
            env[entry.address_env] = f"127.0.0.1:{free_port()}"
        return env

    def _blob_store(self, say: Callable[[str], None]) -> dict[str, str]:
        """AIWORKER_BLOB_URL as given (a folder, or s3:// with AIWORKER_S3_ENDPOINT_URL and
        AWS_*, which every child inherits); --blob-store s3: an embedded SeaweedFS; else var/blobs."""
        given = os.environ.get("AIWORKER_BLOB_URL")
        if self.blob_store == "s3":
            if given:
                raise LaunchError(
                    "s3", f"--blob-store s3 starts an S3 server of its own, but AIWORKER_BLOB_URL={given}: unset one"
                )
            try:
                server = start_s3(self.var_dir / "s3", log_path=self.logs / "s3.log")
            except (OSError, RuntimeError, TimeoutError) as exc:
                raise LaunchError("s3", str(exc).splitlines()[0], log_tail(self.logs / "s3.log")) from None
            self.processes["s3"] = server.process
            self.supervisor.watch(server.process, ready=lambda: s3_answers(server.endpoint_url))
            env = {"AIWORKER_BLOB_URL": S3_BLOB_URL, "AIWORKER_S3_ENDPOINT_URL": server.endpoint_url}
            env.update({name: os.environ.get(name) or value for name, value in S3_LOCAL_DEFAULTS.items()})
            try:
                _ensure_bucket(env)
            except Exception as exc:  # noqa: BLE001 - whatever boto3 raises, named with the server's log
                raise LaunchError(
                    "s3", f"creating the bucket of {S3_BLOB_URL}: {exc}", server.process.log_tail(20)
                ) from None
            say(f"  s3        embedded at {server.endpoint_url} (data kept in {self.var_dir / 's3'})")
            say(f"  blobs     {S3_BLOB_URL}")
            return env
        if self.blob_store != "folder":
            raise LaunchError("blobs", f"--blob-store is folder or s3, not {self.blob_store!r}")
        url = given or str(self.var_dir / "blobs")
        if url.startswith("s3://"):
            try:
                _ensure_bucket({})
            except Exception as exc:  # noqa: BLE001 - it may exist with a key that cannot check
                say(f"  warning: could not check or create the bucket of {url}: {exc}")
        say(f"  blobs     {url}" + (" (AIWORKER_BLOB_URL)" if given else ""))
        return {"AIWORKER_BLOB_URL": url}

    def _migrate(self, say: Callable[[str], None]) -> None:
        from orchestrator.storage.db import upgrade

        try:
            upgrade(self.env["AIWORKER_DATABASE_URL"])
        except Exception as exc:
            raise LaunchError("migrations", str(exc).splitlines()[0]) from exc
        say("  database  migrated")

    def _spawn(
        self,
        name: str,
        argv: list[str],
        extra_env: dict[str, str] | None = None,
        ready: Callable[[], bool] | None = None,
    ) -> None:
        env = {**self.env, **(extra_env or {})}
        self.processes[name] = ManagedProcess(name, argv, self.logs / f"{name}.log", env=env).start()
        self.supervisor.watch(self.processes[name], ready)

    def _wait(self, name: str, timeout: float, what: str, also: Callable[[], bool] | None = None) -> None:
        """Until `name` is ready (and `also` holds), supervising everything meanwhile: a
        component that dies is restarted, one that keeps dying at start is given up."""
        deadline = time.monotonic() + timeout
        while True:
            self.check()
            if self.supervisor.is_ready(name) and (also is None or _holds(also)):
                return
            if time.monotonic() > deadline:
                raise LaunchError(name, f"no {what} after {timeout:.0f}s", self.processes[name].log_tail(20))
            time.sleep(0.3)

    def check(self) -> None:
        """One round of supervision; LaunchError when a component is given up."""
        try:
            self.supervisor.check()
        except GaveUp as exc:
            raise LaunchError(exc.component, exc.reason, exc.log_tail, exc.log_path) from None

    def _pings(self, hostname: str) -> bool:
        if self._control is None:
            from celery import Celery

            from orchestrator.app import celery_config
            from orchestrator.settings import OrchestratorSettings

            # The broker and its transport options are all a ping needs. Unvalidated on purpose: a
            # setting the workers refuse must fail in the worker (named, with its log), not here.
            settings = OrchestratorSettings.model_construct(broker_url=self.env["AIWORKER_BROKER_URL"])
            self._control = Celery("aiworker-local", broker=settings.broker_url)
            self._control.conf.broker_transport_options = celery_config(settings)["broker_transport_options"]
        return bool(self._control.control.ping(destination=[hostname], timeout=1))

    # -- run / stop ---------------------------------------------------------------
    def stop(self, say: Callable[[str], None] = print) -> None:
        # Front to back, a tier at a time: nothing new arrives while the rest shuts down.
        for tier in (("gateway",), ("beat", "worker-cpu", "worker-gpu"), (*SERVICES, "s3"), ("redis",)):
            stopping = {name: self.processes.pop(name) for name in tier if name in self.processes}
            for proc in stopping.values():
                proc.terminate()
            termed = time.monotonic()
            for name, proc in stopping.items():  # each given its time from the common TERM
                proc.stop(timeout=max(0.1, termed + self._stop_timeout(name) - time.monotonic()))
        for proc in self.processes.values():
            proc.stop()
        self.processes.clear()
        if self._control is not None:
            self._control.close()
            self._control = None
        if self.postgres is not None:
            self.postgres.stop()
            self.postgres = None
        say("stopped every component")
        if self.logs.exists():
            self.record("stopped every component")

    def _stop_timeout(self, name: str) -> float:
        # One still starting has nothing to drain (a service loading its model may not even
        # see TERM); SeaweedFS: see WEED_STOP_SECONDS.
        if name == "s3":
            return WEED_STOP_SECONDS
        if not self.supervisor.is_ready(name):
            return 5
        return 20

    def serve_forever(self, poll: float = 0.5) -> None:
        """Supervises until KeyboardInterrupt; LaunchError when a component is given up."""
        while True:
            self.check()
            time.sleep(poll)


def _holds(condition: Callable[[], bool]) -> bool:
    try:
        return bool(condition())
    except Exception:  # noqa: BLE001 - not yet
        return False


def _ensure_bucket(env: dict[str, str]) -> None:
    """Creates the bucket of an s3:// AIWORKER_BLOB_URL when missing (settings from `env`
    over the launcher's environment; unvalidated, like the workers' ping above)."""
    from pydantic import SecretStr

    from orchestrator.settings import OrchestratorSettings
    from orchestrator.storage.blobs import blob_store_for

    values = {**os.environ, **env}
    settings = OrchestratorSettings.model_construct(
        blob_url=values["AIWORKER_BLOB_URL"],
        s3_endpoint_url=values.get("AIWORKER_S3_ENDPOINT_URL", ""),
        s3_access_key_id=values.get("AWS_ACCESS_KEY_ID", ""),
        s3_secret_access_key=SecretStr(values.get("AWS_SECRET_ACCESS_KEY", "")),
        s3_region=values.get("AWS_REGION", ""),
    )
    blob_store_for(settings).backend.ensure_bucket()
