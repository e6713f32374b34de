"""Settings of `aiworker-exporter` (env prefix AIWORKER_EXPORTER_). Redis, the
broker, PostgreSQL, the outbox's name and the pipeline modules come from
OrchestratorSettings (AIWORKER_*), as for every other orchestrator process."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ExporterSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AIWORKER_EXPORTER_", extra="ignore")

    host: str = Field("127.0.0.1", description="interface of the /metrics listener (0.0.0.0 for all)")
    port: int = Field(9160, ge=0, le=65535, description="Prometheus /metrics port (0 = any free port)")
    poll_seconds: float = Field(5.0, gt=0, description="how often new tracking rows are read from PostgreSQL")
    settle_seconds: float = Field(
        5.0,
        ge=0,
        description="a row is counted once its time is this far in the past (clock skew between hosts, "
        "commits in flight), and never before the tracking outbox drained every older event",
    )
    stuck_factor: float = Field(
        3.0, gt=0, description="a pipeline running longer than its estimated duration times this is stuck"
    )
    estimate_refresh_seconds: float = Field(
        60.0, gt=0, description="how long the pipelines' estimated durations (for stuck) are reused"
    )
    batch_rows: int = Field(5000, ge=1, description="rows read per query while catching up")
    catch_up_seconds: float = Field(
        3600.0,
        ge=0,
        description="after a restart, rows since the saved high-water marks are counted, but none older "
        "than this (a long outage is not replayed into one scrape)",
    )
    log_level: str = "info"
    log_format: str = "auto"
