"""Server bootstrap shared by the model services.

`create_server(settings, servicer)` builds a grpc.aio server with the one
interceptor, health, reflection and metrics, bound to settings.host:port (0 =
any free port), and returns it with the bound port. `serve()` is what each
service's __main__ calls: start, load + warm the model, report SERVING, and on
SIGTERM report NOT_SERVING, keep serving for `drain_seconds`, then stop with a
grace period.

A servicer whose model can be unloaded while the service keeps serving (on
request, or after an idle time) reports the model's state with
`report_model_state()`: every reply's trailing metadata then carries it as
`x-aiworker-model-state` beside `x-aiworker-device` (health checks included, so
a health aggregator learns it without another RPC), and the
`aiworker_model_loaded` gauge follows it."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable, Sequence
from typing import TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import Gauge

from svc_runtime import tracing
from svc_runtime.channels import server_options
from svc_runtime.errors import StartupError
from svc_runtime.health import Health
from svc_runtime.interceptor import DEVICE_KEY, ServiceInterceptor
from svc_runtime.logs import configure_logging, get_logger
from svc_runtime.metrics import ServiceMetrics
from svc_runtime.settings import ServiceSettings

log = get_logger(__name__)

MODEL_STATE_KEY = "x-aiworker-model-state"
MODEL_LOADED = "loaded"


class ServicerBase:
    """Base of a servicer the runtime serves (a model service's, or the gateway's):
    it maps proto ↔ its work; the runtime calls `startup()` (e.g. load + warm a
    model) before reporting SERVING."""

    #: full proto service name, e.g. "aiworker.parser.v1.Parser"
    service_name: str = ""
    device: str = "cpu"
    #: set by create_server so a servicer can flip readiness (e.g. on unload)
    health: Health
    metrics: ServiceMetrics

    _interceptor: ServiceInterceptor | None = None
    _loaded_gauge: Gauge | None = None
    _model_state: str | None = None

    def register(self, server: grpc.aio.Server) -> None:
        raise NotImplementedError

    def report_model_state(self, state: str) -> None:
        """The model's state ("loaded", "loading", "unloaded") from now on, in every
        reply's trailing metadata. Callable from any thread, also before the server exists."""
        self._model_state = state
        if self._interceptor is not None:
            self._interceptor.trailing = ((DEVICE_KEY, self.device), (MODEL_STATE_KEY, state))
        if self._loaded_gauge is not None:
            self._loaded_gauge.set(1 if state == MODEL_LOADED else 0)

    async def startup(self) -> None:
        """Loads and warms the model. Raise StartupError when it cannot."""

    async def shutdown(self) -> None:
        """Frees the model after the server stopped."""


class ServiceServer:
    def __init__(
        self,
        settings: ServiceSettings,
        servicer: ServicerBase,
        server: grpc.aio.Server,
        health: Health,
        metrics: ServiceMetrics,
        port: int,
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
        log.info(
            "server_started",
            service=self.servicer.service_name,
            host=self.settings.host,
            port=self.port,
            metrics_port=self.metrics_port,
            device=self.servicer.device,
        )

    async def load_model(self) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        await self.servicer.startup()
        await self.set_ready(True)
        log.info(
            "model_ready",
            service=self.servicer.service_name,
            device=self.servicer.device,
            seconds=round(loop.time() - started, 2),
        )

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


def create_server(
    settings: ServiceSettings, servicer: ServicerBase, interceptors: Sequence[grpc.aio.ServerInterceptor] = ()
) -> tuple[ServiceServer, int]:
    """Call from inside the event loop that will run the server. `interceptors`
    run after the runtime's own (e.g. the gateway's API-key check)."""
    short_name = servicer.service_name.split(".")[1] if "." in servicer.service_name else servicer.service_name
    metrics = ServiceMetrics(short_name)
    health = Health(servicer.service_name)
    servicer.health = health
    servicer.metrics = metrics
    interceptor = ServiceInterceptor(metrics, servicer.device, settings.access_log)
    servicer._interceptor = interceptor
    if servicer._model_state is not None:
        servicer._loaded_gauge = Gauge(
            "aiworker_model_loaded",
            "1 while the model is loaded (0 = unloaded or loading; the service still serves and loads on demand)",
            ("service",),
            registry=metrics.registry,
        ).labels(short_name)
        servicer.report_model_state(servicer._model_state)
    tracing.configure(f"aiworker-{short_name}")
    server = grpc.aio.server(
        # tracing's outermost: the runtime interceptor's log lines carry the trace id
        interceptors=[*tracing.grpc_server_interceptors(), interceptor, *interceptors],
        maximum_concurrent_rpcs=settings.max_concurrent_rpcs,
        options=server_options(
            settings.max_message_bytes, settings.max_connection_age_seconds, settings.max_connection_age_grace_seconds
        ),
    )
    servicer.register(server)
    health_pb2_grpc.add_HealthServicer_to_server(health.servicer, server)
    reflection.enable_server_reflection(
        (servicer.service_name, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
        server,
    )
    port = server.add_insecure_port(f"{settings.host}:{settings.port}")
    if port == 0:
        raise StartupError(f"cannot bind {settings.host}:{settings.port} (in use?)")
    return ServiceServer(settings, servicer, server, health, metrics, port), port


S = TypeVar("S", bound=ServiceSettings)


async def _serve(settings: S, make_servicer: Callable[[S], ServicerBase]) -> int:
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


def serve(settings: S, make_servicer: Callable[[S], ServicerBase]) -> None:
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
