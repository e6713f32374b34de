"""Prometheus metrics of one service, in a registry of its own (several servers
may share a process in tests), served on the service's metrics port."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
BATCH_COST_BUCKETS = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536)


@dataclass
class ServiceMetrics:
    service: str
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        labels = ("service", "method")
        self.requests = Counter(
            "aiworker_grpc_requests",
            "RPCs handled, by method and status code",
            (*labels, "code"),
            registry=self.registry,
        )
        self.latency = Histogram(
            "aiworker_grpc_latency_seconds",
            "RPC latency",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge("aiworker_grpc_in_flight", "RPCs in progress", labels, registry=self.registry)
        self.device_info = Gauge(
            "aiworker_service_device",
            "1 for the device the model runs on",
            ("service", "device"),
            registry=self.registry,
        )
        self.ready = Gauge(
            "aiworker_service_ready", "1 when the model is loaded and warm", ("service",), registry=self.registry
        )
        self._methods: dict[str, MethodMetrics] = {}

    def for_method(self, method: str) -> MethodMetrics:
        """The labelled series of one method, looked up once (labels() costs a lock per call)."""
        cached = self._methods.get(method)
        if cached is None:
            cached = self._methods[method] = MethodMetrics(self, method)
        return cached

    def histogram(self, name: str, doc: str, buckets: tuple[float, ...], labels: tuple[str, ...] = ()) -> Histogram:
        """A service-specific histogram (e.g. batch size) in this registry."""
        return Histogram(name, doc, ("service", *labels), buckets=buckets, registry=self.registry)

    def serve(self, host: str, port: int) -> int:
        """Starts the /metrics HTTP endpoint; returns the bound port (port 0 = any)."""
        self._endpoint = MetricsEndpoint(self.registry)
        return self._endpoint.serve(host, port)

    def close(self) -> None:
        endpoint = getattr(self, "_endpoint", None)
        if endpoint is not None:
            endpoint.close()


class BatchMetrics:
    """A DynamicBatcher's reports (svc_runtime.batching.BatchObserver) as metrics in the
    service's registry: batch size (items), cost, queue time and compute time (seconds)."""

    def __init__(self, metrics: ServiceMetrics, metric_prefix: str, with_cost: bool = False) -> None:
        prefix, service = metric_prefix, metrics.service
        self._size = metrics.histogram(
            f"{prefix}_size", "items per batch handed to the batch function", BATCH_SIZE_BUCKETS
        ).labels(service)
        self._cost = (
            metrics.histogram(
                f"{prefix}_cost", "cost (e.g. tokens) per batch handed to the batch function", BATCH_COST_BUCKETS
            ).labels(service)
            if with_cost
            else None
        )
        self._queue = metrics.histogram(
            f"{prefix}_queue_seconds", "time a request waited before its batch started", LATENCY_BUCKETS
        ).labels(service)
        self._compute = metrics.histogram(
            f"{prefix}_compute_seconds", "time the batch function took per batch", LATENCY_BUCKETS
        ).labels(service)
        self._queued = Gauge(
            f"{prefix}_queued_items", "items waiting for a batch", ("service",), registry=metrics.registry
        ).labels(service)

    def queued(self, items: int) -> None:
        self._queued.set(items)

    def waited(self, seconds: float) -> None:
        self._queue.observe(seconds)

    def computed(self, items: int, cost: int, seconds: float) -> None:
        self._size.observe(items)
        if self._cost is not None:
            self._cost.observe(cost)
        self._compute.observe(seconds)


class MetricsEndpoint:
    """prometheus_client's /metrics HTTP server of one registry, started and stopped."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._http: Any = None

    def serve(self, host: str, port: int) -> int:
        """Returns the bound port (port 0 = any)."""
        self._http, _thread = start_http_server(port, addr=host, registry=self.registry)
        return self._http.server_port

    def close(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None


class MethodMetrics:
    """One method's children of the request metrics."""

    def __init__(self, metrics: ServiceMetrics, method: str) -> None:
        self.in_flight = metrics.in_flight.labels(metrics.service, method)
        self.latency = metrics.latency.labels(metrics.service, method)
        self._requests = metrics.requests
        self._labels = (metrics.service, method)
        self._by_code: dict[str, object] = {}

    def requests(self, code: str):
        child = self._by_code.get(code)
        if child is None:
            child = self._by_code[code] = self._requests.labels(*self._labels, code)
        return child
