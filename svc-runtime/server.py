"""Server bootstrap shared by the model services.

`create_server(settings, servicer)` builds a grpc.aio server with the one
interceptor, health, reflection and metrics, bound to settings.host:port (0 =
any free port), and returns it with the bound port. `serve()` is what each
service's __main__ calls: start, load + warm the model, report SERVING, and on
SIGTERM report NOT_SERVING, keep serving for `drain_seconds`, then stop with a
grace period."""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Callable, Sequence, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from svc_runtime.errors import StartupError
from svc_runtime.health import Health
from svc_runtime.interceptor import ServiceInterceptor
from svc_runtime.logs import configure_logging, get_logger
from svc_runtime.metrics import ServiceMetrics
from svc_runtime.settings import ServiceSettings

log = get_logger(__name__)


class ModelServicer:
    """Base of a service's servicer: the servicer maps proto ↔ model; the runtime
    calls `startup()` (load + warm) before reporting SERVING."""

    #: full proto service name, e.g. "aiworker.parser.v1.Parser"
    service_name: str = ""
    device: str = "cpu"
    #: set by create_server so a servicer can flip readiness (e.g. on unload)
    health: Health
    metrics: ServiceMetrics

    def register(self, server: grpc.aio.Server) -> None:
        raise NotImplementedError

    async def startup(self) -> None:
        """Loads and warms the model. Raise StartupError when it cannot."""

    async def shutdown(self) -> None:
        """Frees the model after the server stopped."""


class ServiceServer:
    def __init__(
        self, settings: ServiceSettings, servicer: ModelServicer, server: grpc.aio.Server,
        health: Health, metrics: ServiceMetrics, port: int,
    ) -> None:
        self.settings = settings
        self.servicer = servicer
        self.grpc_server = server
        self.health = health
        self.metrics = metrics
        self.port = port
        self.metrics_port: int | None = None

    async def start(self) -> None:
        await self.grpc_server.start()
        await self.health.set_process_alive()
        if self.settings.metrics_port >= 0:
            self.metrics_port = self.metrics.serve(self.settings.host, self.settings.metrics_port)
        self.metrics.device_info.labels(self.metrics.service, self.servicer.device).set(1)
        log.info("server_started", service=self.servicer.service_name, host=self.settings.host,
                 port=self.port, metrics_port=self.metrics_port, device=self.servicer.device)

    async def load_model(self) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        await self.servicer.startup()
        await self.set_ready(True)
        log.info("model_ready", service=self.servicer.service_name, device=self.servicer.device,
                 seconds=round(loop.time() - started, 2))

    async def set_ready(self, ready: bool) -> None:
        await self.health.set_ready(ready)
        self.metrics.ready.labels(self.metrics.service).set(1 if ready else 0)

    async def stop(self) -> None:
        """Drain (health NOT_SERVING, still serving), then stop with grace."""
        await self.health.drain()
        self.metrics.ready.labels(self.metrics.service).set(0)
        log.info("draining", seconds=self.settings.drain_seconds)
        if self.settings.drain_seconds:
            await asyncio.sleep(self.settings.drain_seconds)
        await self.grpc_server.stop(self.settings.grace_seconds)
        await self.servicer.shutdown()
        self.metrics.close()
        log.info("server_stopped", service=self.servicer.service_name)


def create_server(settings: ServiceSettings, servicer: ModelServicer,
                  interceptors: Sequence[grpc.aio.ServerInterceptor] = ()) -> tuple[ServiceServer, int]:
    """Call from inside the event loop that will run the server. `interceptors`
    run after the runtime's own (e.g. the gateway's API-key check)."""
    short_name = servicer.service_name.split(".")[1] if "." in servicer.service_name else servicer.service_name
    metrics = ServiceMetrics(short_name)
    health = Health(servicer.service_name)
    servicer.health = health
    servicer.metrics = metrics
    server = grpc.aio.server(
        interceptors=[ServiceInterceptor(metrics, servicer.device, settings.access_log), *interceptors],
        maximum_concurrent_rpcs=settings.max_concurrent_rpcs,
        options=[
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.max_send_message_length", settings.max_message_bytes),
            ("grpc.so_reuseport", 0),
        ],
    )
    servicer.register(server)
    health_pb2_grpc.add_HealthServicer_to_server(health.servicer, server)
    reflection.enable_server_reflection(
        (servicer.service_name, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
         reflection.SERVICE_NAME),
        server,
    )
    port = server.add_insecure_port(f"{settings.host}:{settings.port}")
    if port == 0:
        raise StartupError(f"cannot bind {settings.host}:{settings.port} (in use?)")
    return ServiceServer(settings, servicer, server, health, metrics, port), port


S = TypeVar("S", bound=ServiceSettings)


async def _serve(settings: S, make_servicer: Callable[[S], ModelServicer]) -> int:
    servicer = make_servicer(settings)
    server, _port = create_server(settings, servicer)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loading = asyncio.create_task(server.load_model())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({loading, stopping}, return_when=asyncio.FIRST_COMPLETED)
    exit_code = 0
    if loading.done() and loading.exception() is not None:
        log.error("model_load_failed", error=str(loading.exception()), exc_info=loading.exception())
        exit_code = 3
    else:
        await stopping
        if not loading.done():
            loading.cancel()
    await server.stop()
    return exit_code


def serve(settings: S, make_servicer: Callable[[S], ModelServicer]) -> None:
    """Runs a service until SIGTERM/SIGINT. Exits 2 on a configuration error,
    3 when the model fails to load."""
    configure_logging(settings.log_level, settings.log_format)
    try:
        code = asyncio.run(_serve(settings, make_servicer))
    except StartupError as exc:
        log.error("startup_failed", error=str(exc))
        print(f"error: {exc}", file=sys.stderr)
        code = 2
    sys.exit(code)
