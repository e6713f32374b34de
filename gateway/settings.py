"""Gateway settings (env prefix AIWORKER_GATEWAY_). The broker, database and
service addresses come from OrchestratorSettings (AIWORKER_*)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from orchestrator.broker.routing import QUEUES
from svc_runtime.catalogue import SERVICES

MiB = 1024 * 1024


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AIWORKER_GATEWAY_", extra="ignore")

    host: str = Field("127.0.0.1", description="interface of the REST and gRPC listeners")
    port: int = Field(8000, ge=0, le=65535, description="REST port")
    grpc_port: int = Field(50050, ge=0, le=65535, description="gRPC port (0 = any free port)")
    auth_enabled: bool = Field(True, description="require an API key on every call but health and docs")
    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="accepted keys, comma separated, each 'key_id:sha256hex' (hash of the key) "
        "or a plain key (hashed at start; its id is the hash's first 8 hex digits)",
    )
    max_upload_bytes: int = Field(32 * MiB, ge=1, description="largest upload accepted")
    required_services: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(SERVICES),
        description="model services /readyz requires SERVING",
    )
    required_queues: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: list(QUEUES),
        description="queues /readyz requires at least one live worker on",
    )
    health_timeout_seconds: float = Field(2.0, gt=0, description="per-part timeout of a readiness check")
    health_cache_seconds: float = Field(2.0, ge=0, description="readiness results are reused this long")
    watch_interval_seconds: float = Field(0.5, gt=0, description="poll period of SSE/WatchPipeline streams")
    watch_max_seconds: float = Field(3600, gt=0, description="a status stream ends after this long; clients reconnect")
    default_estimate_seconds: float = Field(
        0.0,
        ge=0,
        description="estimated duration of a pipeline whose stages have no tracked history yet (or while "
        "tracking is unreachable), for every pipeline; 0 = each pipeline's own stated default "
        "(PipelineSpec.default_seconds in orchestrator/pipelines/registry.py)",
    )
    metrics_public: bool = Field(
        False,
        description="serve the gateway's Prometheus /metrics without an API key, for a scraper that has "
        "none (deploy/k8s turns it on); then keep /metrics off any public ingress",
    )
    log_level: str = "info"
    log_format: str = "auto"

    @field_validator("api_keys", "required_services", "required_queues", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value
