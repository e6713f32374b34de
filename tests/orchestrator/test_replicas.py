"""A service address naming several replicas: the workers' clients balance calls
over them (round_robin), a replica that goes silent (SIGSTOP: its connections
stay open and nothing answers, as on a cut link) is dropped within seconds by
keepalive, and servers close connections past their maximum age. Two real
parsers; the orchestrator's ChannelPool and typed client."""

from __future__ import annotations

import os
import signal
import time
import urllib.request

import psutil
import pytest

from aiworker_local.services import start_service
from orchestrator.clients import CallContext, ChannelPool, ParserClient
from orchestrator.errors import RetryableServiceError
from svc_parser.model import sample_pdf

PDF = sample_pdf(["Replicas share the load."])


@pytest.fixture(scope="module")
def parsers(log_dir):
    started = [
        start_service("parser", log_dir, "--max-connection-age-seconds", "2", "--max-connection-age-grace-seconds", "1")
        for _ in range(2)
    ]
    yield started
    for service in started:
        os.kill(service.process.proc.pid, signal.SIGCONT)
        service.stop()


def handled(service) -> float:
    """ParsePdf calls the replica answered, from its own Prometheus metrics."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{service.metrics_port}/metrics", timeout=5).read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("aiworker_grpc_requests_total{") and "ParsePdf" in line
    )


def client_for(parsers, keepalive: float = 5, timeout: float = 2) -> ParserClient:
    address = ",".join(service.address for service in parsers)
    return ParserClient(ChannelPool(1 << 20, keepalive, timeout).get(address))


def test_calls_are_balanced_over_the_replicas(parsers):
    before = [handled(s) for s in parsers]
    client = client_for(parsers)
    for _ in range(20):
        assert client.parse_pdf(PDF, CallContext(timeout=30)).has_text
    shares = [handled(s) - b for s, b in zip(parsers, before, strict=True)]
    assert sum(shares) == 20 and min(shares) >= 5, shares  # pick-first would give one replica all 20


def test_a_silent_replica_is_dropped_in_seconds_not_at_the_deadline(parsers):
    client = client_for(parsers, keepalive=5, timeout=2)
    for _ in range(4):  # connected to both
        client.parse_pdf(PDF, CallContext(timeout=30))
    silent = parsers[0]
    os.kill(silent.process.proc.pid, signal.SIGSTOP)
    try:
        started, answered, retried = time.monotonic(), 0, 0
        while answered < 10:
            try:
                client.parse_pdf(PDF, CallContext(timeout=60))  # a stage's deadline is minutes
                answered += 1
            except RetryableServiceError:  # the call that was on the silent replica: UNAVAILABLE, retried
                retried += 1
            assert time.monotonic() - started < 30, "calls waited on the silent replica"
        assert retried <= 3
    finally:
        os.kill(silent.process.proc.pid, signal.SIGCONT)


def test_servers_close_connections_past_their_maximum_age(parsers):
    (service,) = parsers[1:]
    client = client_for([service])
    me = psutil.Process()

    def local_ports() -> set[int]:
        return {c.laddr.port for c in me.net_connections("tcp") if c.raddr and c.raddr.port == service.port}

    client.parse_pdf(PDF, CallContext(timeout=30))
    first = local_ports()
    assert first
    time.sleep(4.5)  # age 2 s + grace 1 s, then the client reconnects
    client.parse_pdf(PDF, CallContext(timeout=30))
    assert local_ports() - first, "the connection outlived its maximum age"


def test_an_address_list_with_a_scheme_inside_is_refused():
    with pytest.raises(ValueError, match="host:port items"):
        ChannelPool(1 << 20).get("dns:///a:1,b:2")
    with pytest.raises(ValueError, match="empty"):
        ChannelPool(1 << 20).get("")


def test_readiness_reports_each_replica(parsers):
    import asyncio
    import socket

    from gateway.health import HealthAggregator
    from gateway.settings import GatewaySettings
    from orchestrator.settings import OrchestratorSettings

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        nothing = f"127.0.0.1:{sock.getsockname()[1]}"
    listed = ",".join([*(s.address for s in parsers), nothing])
    health = HealthAggregator(OrchestratorSettings(parser_address=listed), GatewaySettings(), app=None)

    async def check():
        try:
            return await health.check_service("parser")
        finally:
            await health.close()

    part = asyncio.run(check())
    assert part.ready and part.status == "DEGRADED" and part.device == "cpu"
    by_address = {r["address"]: r["status"] for r in part.replicas}
    assert by_address == {parsers[0].address: "SERVING", parsers[1].address: "SERVING", nothing: "UNAVAILABLE"}
    assert nothing in part.detail
