"""The gateway as users run it: `aiworker-gateway` on free ports, pointed at a stack."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import httpx

from aiworker_local.infra import free_port
from aiworker_local.procs import ManagedProcess

BIN = Path(sys.executable).parent


@dataclass
class RunningGateway:
    process: ManagedProcess
    port: int
    grpc_port: int
    api_key: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def grpc_address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def client(self, authed: bool = True, timeout: float = 30) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers if authed else {}, timeout=timeout)

    def stop(self) -> None:
        self.process.stop()


def start_gateway(
    env: dict[str, str], log_dir: Path, api_key: str, name: str = "gateway", wait_ready: bool = False, **settings: str
) -> RunningGateway:
    port, grpc_port = free_port(), free_port()
    gateway_env = {
        **env,
        "AIWORKER_GATEWAY_API_KEYS": api_key,
        "AIWORKER_GATEWAY_LOG_FORMAT": "json",
        **{f"AIWORKER_GATEWAY_{k.upper()}": str(v) for k, v in settings.items()},
    }
    argv = [str(BIN / "aiworker-gateway"), "--port", str(port), "--grpc-port", str(grpc_port)]
    process = ManagedProcess(name, argv, log_dir / f"{name}-{port}.log", env=gateway_env).start()
    gateway = RunningGateway(process, port, grpc_port, api_key)
    process.wait_until(lambda: httpx.get(f"{gateway.url}/healthz", timeout=1).status_code == 200, 60, "/healthz")
    if wait_ready:
        process.wait_until(lambda: httpx.get(f"{gateway.url}/readyz", timeout=5).status_code == 200, 60, "/readyz 200")
    return gateway
