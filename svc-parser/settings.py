from __future__ import annotations

from pydantic import Field

from svc_runtime.catalogue import service
from svc_runtime.settings import MiB, ServiceSettings, config_of, device_field, metrics_port_field, port_field

ENTRY = service("parser")


class ParserSettings(ServiceSettings):
    model_config = config_of(ENTRY)

    port: int = port_field(ENTRY)
    metrics_port: int = metrics_port_field(ENTRY)
    device: str = device_field(ENTRY, "cpu (PyMuPDF runs on the CPU only; auto means cpu)")
    max_pdf_bytes: int = Field(32 * MiB, ge=1, description="largest PDF accepted")
    max_pages: int = Field(500, ge=1, description="pages parsed at most; later pages are cut and flagged")
