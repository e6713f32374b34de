"""Settings shared by every model service. Each service subclasses
`ServiceSettings` with its own env prefix (e.g. AIWORKER_PARSER_)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from svc_runtime.catalogue import ServiceEntry

MiB = 1024 * 1024
DEVICE_HELP = "cpu | cuda | cuda:N | auto (CUDA when present, else CPU)"


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AIWORKER_SERVICE_", extra="ignore")

    host: str = Field("127.0.0.1", description="interface to bind (0.0.0.0 for all)")
    port: int = Field(50051, ge=0, le=65535, description="gRPC port (0 = any free port)")
    metrics_port: int = Field(0, ge=-1, le=65535, description="Prometheus /metrics port (0 = any free port, -1 = off)")
    device: str = Field("auto", description="cpu | cuda | cuda:N | auto (CUDA when present, else CPU)")
    max_message_bytes: int = Field(
        64 * MiB, ge=MiB, description="largest request the server accepts (gRPC receive limit)"
    )
    max_concurrent_rpcs: int = Field(256, ge=1, description="RPCs in flight before new ones are refused")
    drain_seconds: float = Field(
        0.0, ge=0, description="after SIGTERM: seconds to keep serving while health says NOT_SERVING"
    )
    grace_seconds: float = Field(10.0, ge=0, description="after draining: seconds in-flight RPCs get to finish")
    max_connection_age_seconds: float = Field(
        300.0,
        ge=0,
        description="a client connection is closed after this long (0 = never), so clients reconnect and new "
        "replicas get their share",
    )
    max_connection_age_grace_seconds: float = Field(
        660.0, ge=0, description="calls in flight on a connection past its age get this long to finish"
    )
    log_level: str = Field("info", description="debug | info | warning | error")
    access_log: bool = Field(
        True,
        description="one rpc_finished line per successful RPC (with its ids and duration); off: "
        "failures only. Costs ~0.1 ms of CPU per call: turn it off for many tiny calls",
    )
    log_format: Literal["auto", "json", "console"] = Field(
        "auto", description="json, console, or auto (console on a TTY, else JSON)"
    )


def config_of(entry: ServiceEntry) -> SettingsConfigDict:
    """A service's settings read AIWORKER_<NAME>_* (svc_runtime.catalogue)."""
    return SettingsConfigDict(env_prefix=entry.env_prefix, extra="ignore")


def port_field(entry: ServiceEntry) -> int:
    return Field(entry.port, ge=0, le=65535, description="gRPC port (0 = any free port)")


def metrics_port_field(entry: ServiceEntry) -> int:
    return Field(entry.metrics_port, ge=-1, le=65535, description="Prometheus port (0 = any, -1 = off)")


def device_field(entry: ServiceEntry, description: str = DEVICE_HELP) -> str:
    return Field(entry.device, description=description)
