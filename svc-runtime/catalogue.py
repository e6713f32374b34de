"""THE service catalogue: every model service, once. Its proto service, default
ports, default device, and the names derived from them (console script, module,
env prefix, the address setting clients read). Read by the services' settings,
the orchestrator's clients, the gateway's health checks, the local launcher and
the test support; tests/deploy checks compose and Kubernetes against it.

Adding a service: its .proto, its folder (`svc-<name>/`), one entry here, its
client class in orchestrator/clients.py, and its lines in pyproject.toml
(docs/pipelines.md, "Adding a model service")."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServiceEntry:
    name: str  # catalogue key: the setting stem, health part and compose/k8s name (svc-<name>)
    proto_service: str  # full gRPC service name, also the grpc.health.v1 service that says "model ready"
    port: int  # default gRPC port
    metrics_port: int  # default Prometheus port
    device: str  # default --device
    summary: str

    @property
    def module(self) -> str:
        """`python -m <module>` serves it."""
        return f"svc_{self.name}"

    @property
    def script(self) -> str:
        return f"aiworker-{self.name}"

    @property
    def env_prefix(self) -> str:
        """The service's own settings (AIWORKER_PARSER_PORT, ...)."""
        return f"AIWORKER_{self.name.upper()}_"

    @property
    def address_setting(self) -> str:
        """The orchestrator setting (field name) naming where clients find it."""
        return f"{self.name}_address"

    @property
    def address_env(self) -> str:
        return f"AIWORKER_{self.address_setting.upper()}"

    @property
    def default_address(self) -> str:
        return f"127.0.0.1:{self.port}"


SERVICES: dict[str, ServiceEntry] = {
    entry.name: entry
    for entry in (
        ServiceEntry("parser", "aiworker.parser.v1.Parser", 50051, 9151, "cpu", "PDF → text per page (PyMuPDF)"),
        ServiceEntry(
            "embedder", "aiworker.embedder.v1.Embedder", 50052, 9152, "auto", "texts → vectors (sentence-transformers)"
        ),
        ServiceEntry("llm", "aiworker.llm.v1.Llm", 50053, 9153, "auto", "chat generation, streamed (transformers)"),
        ServiceEntry("stt", "aiworker.stt.v1.Stt", 50054, 9154, "auto", "audio → transcript (faster-whisper)"),
    )
}


def service(name: str) -> ServiceEntry:
    try:
        return SERVICES[name]
    except KeyError:
        raise KeyError(f"unknown service {name!r}; known: {', '.join(SERVICES)}") from None


def replicas(address: str) -> list[str]:
    """The replicas an address setting names: "host:port", a comma-separated list
    "host1:port,host2:port", or one gRPC target with a scheme ("dns:///name:port",
    resolved and re-resolved by gRPC itself)."""
    parts = [part.strip() for part in address.split(",") if part.strip()]
    if not parts:
        raise ValueError("a service address is empty")
    if len(parts) > 1 and any("://" in part or part.startswith(("dns:", "ipv4:", "ipv6:")) for part in parts):
        raise ValueError(f"a list of replicas takes host:port items, not gRPC targets with a scheme: {address!r}")
    return parts
