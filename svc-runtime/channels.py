"""How clients and servers of the model services hold their connections, in one
place, so both sides agree:

- Clients balance calls over every replica an address names (gRPC's
  `round_robin`, not the default pick-first that sticks to one replica forever)
  and send keepalive pings, so a replica that goes silent (a cut link is silence,
  not a reset) is dropped within seconds instead of stalling calls until their
  deadline.
- Servers accept those pings, and close each connection after a maximum age
  (after a grace for calls in flight), so clients reconnect and new replicas get
  their share of the traffic.

An address is "host:port" (every address its name resolves to is balanced), a
list "host1:port,host2:port" (each resolved once, when the channel is made), or
a gRPC target with a scheme such as "dns:///name:port" (re-resolved by gRPC)."""

from __future__ import annotations

import ipaddress
import json
import socket
from typing import Any

from svc_runtime.catalogue import replicas

ROUND_ROBIN = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})
MIN_PING_INTERVAL_MS = 5_000  # servers accept a ping this often; clients never ping faster
SERVER_PING_MS, SERVER_PING_TIMEOUT_MS = 30_000, 10_000


def channel_options(max_message_bytes: int, keepalive_seconds: float, keepalive_timeout_seconds: float) -> list:
    return [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.service_config", ROUND_ROBIN),
        ("grpc.keepalive_time_ms", max(MIN_PING_INTERVAL_MS, int(keepalive_seconds * 1000))),
        ("grpc.keepalive_timeout_ms", int(keepalive_timeout_seconds * 1000)),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        # gRPC ≥1.6x times out every ping with this (keepalive_timeout_ms alone no longer does).
        ("grpc.http2.ping_timeout_ms", int(keepalive_timeout_seconds * 1000)),
        # Reconnect quickly once a restarted replica is back.
        ("grpc.initial_reconnect_backoff_ms", 200),
        ("grpc.max_reconnect_backoff_ms", 2000),
    ]


def server_options(max_message_bytes: int, max_connection_age_seconds: float, grace_seconds: float) -> list:
    options: list[tuple[str, Any]] = [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.so_reuseport", 0),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_ping_interval_without_data_ms", MIN_PING_INTERVAL_MS),
        ("grpc.http2.max_ping_strikes", 0),
        # The server pings too: a caller whose host went silent has its calls cancelled (a
        # generation stops) instead of running on for no one.
        ("grpc.keepalive_time_ms", SERVER_PING_MS),
        ("grpc.http2.ping_timeout_ms", SERVER_PING_TIMEOUT_MS),
    ]
    if max_connection_age_seconds > 0:
        options += [
            ("grpc.max_connection_age_ms", int(max_connection_age_seconds * 1000)),
            ("grpc.max_connection_age_grace_ms", int(grace_seconds * 1000)),
        ]
    return options


def channel_target(address: str) -> str:
    """The gRPC target of an address setting (see the module's doc)."""
    parts = replicas(address)
    return parts[0] if len(parts) == 1 else _static_list(parts)


def _static_list(parts: list[str]) -> str:
    """ipv4:/ipv6: targets of every address of every listed replica (gRPC's static
    lists take literal addresses of one family)."""
    v4, v6 = [], []
    for part in parts:
        for address in resolved(part):
            (v6 if address.startswith("[") else v4).append(address)
    if v4:
        return "ipv4:" + ",".join(v4)
    if v6:
        return "ipv6:" + ",".join(v6)
    raise ValueError(f"no replica of {','.join(parts)!r} resolves to an address")


def resolved(replica: str) -> list[str]:
    """ "host:port" → every "ip:port" (IPv6 as "[ip]:port") the host resolves to."""
    host, _, port = replica.rpartition(":")
    host = host.strip("[]")
    try:
        ipaddress.ip_address(host)
        literal = [host]
    except ValueError:
        try:
            literal = sorted({info[4][0] for info in socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)})
        except socket.gaierror:
            return []
    return [f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}" for ip in literal]


def replica_addresses(address: str) -> list[str]:
    """Every replica an address names, as "ip:port" (for per-replica health checks);
    a dns:/// target is resolved now."""
    out: list[str] = []
    for part in replicas(address):
        target = part.split("///", 1)[1] if "///" in part else part.removeprefix("dns:")
        found = resolved(target)
        out.extend(found or [target])  # unresolvable: checked as given, so it reports why
    return out
