"""grpc.health.v1 for one service: "" says the process is alive, the service's
full name (e.g. aiworker.parser.v1.Parser) says the model is loaded and warm."""

from __future__ import annotations

from grpc_health.v1 import health, health_pb2

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class Health:
    def __init__(self, service_name: str) -> None:
        self.service_name = service_name
        self.servicer = health.aio.HealthServicer()
        self.ready = False

    async def set_process_alive(self) -> None:
        await self.servicer.set("", SERVING)
        await self.servicer.set(self.service_name, NOT_SERVING)

    async def set_ready(self, ready: bool) -> None:
        self.ready = ready
        await self.servicer.set(self.service_name, SERVING if ready else NOT_SERVING)

    async def drain(self) -> None:
        """NOT_SERVING for every name from now on (probes take the pod out)."""
        self.ready = False
        await self.servicer.enter_graceful_shutdown()
