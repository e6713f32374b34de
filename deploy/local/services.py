"""Start a model service as its real console entry point on free ports and wait
until grpc.health.v1 says its model is SERVING."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from aiworker_local.infra import free_port
from aiworker_local.procs import ManagedProcess
from svc_runtime.catalogue import SERVICES


def health_status(address: str, service: str = "", timeout: float = 2.0) -> int:
    with grpc.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout).status


@dataclass
class RunningService:
    kind: str
    port: int
    metrics_port: int
    process: ManagedProcess

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def service_name(self) -> str:
        return SERVICES[self.kind].proto_service

    def status(self, service: str | None = None) -> int:
        return health_status(self.address, self.service_name if service is None else service)

    def wait_serving(self, timeout: float = 180.0) -> RunningService:
        self.process.wait_until(
            lambda: self.status() == health_pb2.HealthCheckResponse.SERVING, timeout, "SERVING health status"
        )
        return self

    def restart(self, timeout: float = 180.0) -> RunningService:
        self.process.stop()
        self.process.start()
        return self.wait_serving(timeout)

    def stop(self) -> None:
        self.process.stop()


def start_service(
    kind: str, log_dir: Path, *args: str, env: dict[str, str] | None = None, port: int | None = None, wait: bool = True
) -> RunningService:
    port = port or free_port()
    metrics_port = free_port()
    argv = [
        sys.executable,
        "-m",
        SERVICES[kind].module,
        "--port",
        str(port),
        "--metrics-port",
        str(metrics_port),
        "--log-format",
        "json",
        *args,
    ]
    process = ManagedProcess(f"svc-{kind}", argv, log_dir / f"svc-{kind}-{port}.log", env=env).start()
    service = RunningService(kind, port, metrics_port, process)
    if wait:
        try:
            service.wait_serving()
        except Exception:
            process.stop()
            raise
    return service
