"""Readiness of everything the gateway depends on: each model service through
grpc.health.v1 (with the device it runs on), Redis, PostgreSQL, and live Celery
workers per queue. Checks run concurrently, each bounded by a timeout."""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import grpc
import redis.asyncio as aioredis
from celery import Celery
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import text

from gateway.settings import GatewaySettings
from orchestrator.settings import OrchestratorSettings
from orchestrator.storage.db import engine_for
from svc_runtime.catalogue import SERVICES
from svc_runtime.channels import replica_addresses
from svc_runtime.interceptor import DEVICE_KEY


@dataclass
class PartHealth:
    name: str
    kind: str  # service | redis | postgres | workers
    ready: bool
    status: str
    detail: str = ""
    device: str | None = None
    latency_ms: float = 0.0
    required: bool = True
    replicas: list[dict[str, Any]] = field(default_factory=list)  # a service's: address, status, device


@dataclass
class Readiness:
    ready: bool
    parts: list[PartHealth] = field(default_factory=list)
    checked_at: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "ready": self.ready,
            "checked_at": self.checked_at,
            "parts": {p.name: {k: v for k, v in asdict(p).items() if k != "name"} for p in self.parts},
        }

    def not_ready(self) -> list[str]:
        return [p.name for p in self.parts if p.required and not p.ready]


class HealthAggregator:
    def __init__(self, orchestrator: OrchestratorSettings, gateway: GatewaySettings, app: Celery) -> None:
        self.orchestrator = orchestrator
        self.gateway = gateway
        self.app = app
        self._cached: Readiness | None = None
        self._lock = asyncio.Lock()
        self._channels: dict[str, grpc.aio.Channel] = {}

    def address_of(self, service: str) -> str:
        return self.orchestrator.address_of(service)

    async def check_service(self, service: str) -> PartHealth:
        """Every replica the service's address names, each on its own channel: ready
        while one serves; DEGRADED when some do not (each replica is listed)."""
        started = time.perf_counter()
        address = self.address_of(service)
        try:
            targets = await asyncio.to_thread(replica_addresses, address)
        except ValueError as exc:
            targets, problem = [], str(exc)
        else:
            problem = ""
        checks = await asyncio.gather(*(self._check_replica(service, target) for target in targets))
        serving = [c for c in checks if c["status"] == "SERVING"]
        if serving:
            status = "SERVING" if len(serving) == len(checks) else "DEGRADED"
        else:
            status = checks[0]["status"] if checks else "UNAVAILABLE"
        failing = [f"{c['address']}: {c['detail']}" for c in checks if c["status"] != "SERVING"]
        return PartHealth(
            service,
            "service",
            bool(serving),
            status,
            "; ".join([problem, *failing]).strip("; ") or address,
            device=serving[0]["device"] if serving else None,
            latency_ms=_ms(started),
            required=service in self.gateway.required_services,
            replicas=checks,
        )

    async def _check_replica(self, service: str, target: str) -> dict[str, Any]:
        channel = self._channels.get(target)
        if channel is None:
            channel = self._channels[target] = grpc.aio.insecure_channel(target)
        try:
            call = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=SERVICES[service].proto_service),
                timeout=self.gateway.health_timeout_seconds,
            )
            reply = await call
            trailing = dict(await call.trailing_metadata() or ())
            status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
            return {"address": target, "status": status, "device": trailing.get(DEVICE_KEY), "detail": ""}
        except grpc.aio.AioRpcError as exc:
            return {"address": target, "status": exc.code().name, "device": None, "detail": exc.details() or ""}

    async def check_redis(self) -> PartHealth:
        started = time.perf_counter()
        client = aioredis.Redis.from_url(
            self.orchestrator.broker_url,
            socket_timeout=self.gateway.health_timeout_seconds,
            socket_connect_timeout=self.gateway.health_timeout_seconds,
        )
        try:
            await client.ping()
            return PartHealth("redis", "redis", True, "SERVING", latency_ms=_ms(started))
        except Exception as exc:  # noqa: BLE001 - any failure means not ready
            return PartHealth("redis", "redis", False, "UNAVAILABLE", _first_line(exc), latency_ms=_ms(started))
        finally:
            await client.aclose()

    async def check_postgres(self) -> PartHealth:
        started = time.perf_counter()

        def ping() -> None:
            with engine_for(self.orchestrator.database_url).connect() as conn:
                conn.execute(text("SELECT 1"))

        try:
            await asyncio.wait_for(asyncio.to_thread(ping), self.gateway.health_timeout_seconds)
            return PartHealth("postgres", "postgres", True, "SERVING", latency_ms=_ms(started))
        except Exception as exc:  # noqa: BLE001
            return PartHealth(
                "postgres", "postgres", False, "UNAVAILABLE", _first_line(exc) or "timeout", latency_ms=_ms(started)
            )

    async def check_workers(self) -> list[PartHealth]:
        started = time.perf_counter()

        def active_queues() -> dict[str, list[str]]:
            replies = self.app.control.inspect(timeout=min(1.0, self.gateway.health_timeout_seconds)).active_queues()
            by_queue: dict[str, list[str]] = {}
            for worker, queues in (replies or {}).items():
                for queue in queues:
                    by_queue.setdefault(queue["name"], []).append(worker)
            return by_queue

        try:
            by_queue = await asyncio.wait_for(asyncio.to_thread(active_queues), self.gateway.health_timeout_seconds + 1)
        except Exception as exc:  # noqa: BLE001
            return [
                PartHealth(
                    f"workers:{q}",
                    "workers",
                    False,
                    "UNAVAILABLE",
                    _first_line(exc) or "timeout",
                    latency_ms=_ms(started),
                )
                for q in self.gateway.required_queues
            ]
        return [
            PartHealth(
                f"workers:{q}",
                "workers",
                bool(by_queue.get(q)),
                "SERVING" if by_queue.get(q) else "NO_WORKERS",
                ", ".join(sorted(by_queue.get(q, []))),
                latency_ms=_ms(started),
            )
            for q in self.gateway.required_queues
        ]

    async def readiness(self, fresh: bool = False) -> Readiness:
        async with self._lock:
            cached = self._cached
            if not fresh and cached and time.time() - cached.checked_at < self.gateway.health_cache_seconds:
                return cached
            results = await asyncio.gather(
                *(self.check_service(s) for s in SERVICES),
                self.check_redis(),
                self.check_postgres(),
                self.check_workers(),
            )
            parts = [*results[:-1], *results[-1]]
            self._cached = Readiness(all(p.ready for p in parts if p.required), parts, time.time())
            return self._cached

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
