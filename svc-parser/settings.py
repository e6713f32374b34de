from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from svc_runtime.settings import MiB, ServiceSettings


class ParserSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="AIWORKER_PARSER_", extra="ignore")

    port: int = Field(50051, ge=0, le=65535, description="gRPC port (0 = any free port)")
    metrics_port: int = Field(9151, ge=-1, le=65535, description="Prometheus port (0 = any, -1 = off)")
    device: str = Field("cpu", description="cpu (PyMuPDF runs on the CPU only; auto means cpu)")
    max_pdf_bytes: int = Field(32 * MiB, ge=1, description="largest PDF accepted")
    max_pages: int = Field(500, ge=1, description="pages parsed at most; later pages are cut and flagged")
