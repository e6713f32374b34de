"""gRPC overhead of a tiny call on a real model service against a bare grpcio
echo server, both subprocesses on this machine, in one run.

    .venv/bin/python -m bench.grpc_overhead [--calls 2000] [--rounds 10] [--concurrency 1,8]
                                            [--service-arg=--log-level=warning ...]

Servers: (a) a bare grpc.aio echo server of this module (bytes in, the same
bytes out, one generic handler, no interceptors, no health, no reflection) and
(b) svc-llm as it is deployed (`--load-mode lazy --device cpu`, JSON logs to a
file) answering `ModelStatus`: an empty request, a ~40-byte reply read from the
engine's state, and the service's whole stack around it (the interceptor's log
context, Prometheus metrics, the per-RPC `rpc_finished` log line, error
mapping, trailing metadata). Both sides are called alike: raw bytes (no proto
parsing in the client), the orchestrator's three id headers, a deadline.

Measured: sequential latency (one reused channel, the sync client the
orchestrator uses; `--calls` per side after warm-up) and throughput at each
`--concurrency` (grpc.aio, that many calls in flight), and the server's CPU per
call (user + system time of its process from /proc over a round's calls). Rounds alternate the
two servers so background load hits both alike; latencies are pooled over the
rounds, throughput is the median of the rounds. Target (docs/decisions/0014-benchmark-targets.md): tiny call
p50 ≤ 1.5 × bare echo p50. Writes bench/results/grpc_overhead.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc

from aiworker.llm.v1 import llm_pb2
from aiworker_local.infra import free_port
from aiworker_local.procs import ManagedProcess
from aiworker_local.services import start_service
from bench.common import RESULTS, percentile, report, summary

TARGET = 1.5
ECHO_SERVICE, ECHO_METHOD = "bench.Echo", "Echo"
MODEL_STATUS = "/aiworker.llm.v1.Llm/ModelStatus"


# -- the bare echo server (a subprocess: python -m bench.grpc_overhead --echo-server --port N) --
async def _echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return request


async def serve_echo(port: int) -> None:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(ECHO_SERVICE, {ECHO_METHOD: grpc.unary_unary_rpc_method_handler(_echo)}),)
    )
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(1)


# -- the client side ---------------------------------------------------------------------
@dataclass
class Target:
    name: str
    address: str
    method: str
    payload: bytes
    pid: int

    def call_sync(self, channel: grpc.Channel):
        return channel.unary_unary(self.method)  # no (de)serializers: bytes both ways, as the echo


METADATA = (("x-request-id", uuid.uuid4().hex), ("x-pipeline-id", uuid.uuid4().hex), ("x-task-id", str(uuid.uuid4())))


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads) so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sequential(target: Target, calls: int, warmup: int) -> list[float]:
    with grpc.insecure_channel(target.address) as channel:
        call = target.call_sync(channel)
        for _ in range(warmup):
            call(target.payload, timeout=30, metadata=METADATA)
        out = []
        for _ in range(calls):
            started = time.perf_counter()
            call(target.payload, timeout=30, metadata=METADATA)
            out.append(time.perf_counter() - started)
    return out


async def _drive(target: Target, calls: int, concurrency: int) -> float:
    async with grpc.aio.insecure_channel(target.address) as channel:
        call = channel.unary_unary(target.method)
        for _ in range(50):
            await call(target.payload, timeout=30, metadata=METADATA)
        left = calls

        async def caller() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                await call(target.payload, timeout=30, metadata=METADATA)

        started = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(concurrency)))
        return calls / (time.perf_counter() - started)


def throughput(target: Target, calls: int, concurrency: int) -> float:
    return asyncio.run(_drive(target, calls, concurrency))


def start_echo(log_dir: Path) -> tuple[ManagedProcess, str]:
    port = free_port()
    argv = [sys.executable, "-m", "bench.grpc_overhead", "--echo-server", "--port", str(port)]
    proc = ManagedProcess(
        "bench-echo", argv, log_dir / f"bench-echo-{port}.log", cwd=Path(__file__).resolve().parents[1]
    ).start()
    address = f"127.0.0.1:{port}"

    def answers() -> bool:
        with grpc.insecure_channel(address) as channel:
            return channel.unary_unary(f"/{ECHO_SERVICE}/{ECHO_METHOD}")(b"x", timeout=1) == b"x"

    try:
        proc.wait_until(answers, 30, "echo reply")
    except Exception:
        proc.stop()
        raise
    return proc, address


def measure(targets: list[Target], calls: int, rounds: int, levels: list[int]) -> dict[str, dict]:
    latencies: dict[str, list[float]] = {t.name: [] for t in targets}
    round_p50: dict[str, list[float]] = {t.name: [] for t in targets}
    rates: dict[str, dict[int, list[float]]] = {t.name: {c: [] for c in levels} for t in targets}
    cpu = {t.name: [0.0, 0] for t in targets}  # server CPU seconds, calls timed
    per_round = max(1, calls // rounds)
    for target in targets:  # first-call costs (lazy imports, connection) out of the figures
        sequential(target, 0, warmup=200)
    for round_ in range(rounds):
        for target in targets if round_ % 2 == 0 else list(reversed(targets)):
            before = cpu_seconds(target.pid)
            got = sequential(target, per_round, warmup=20)
            latencies[target.name] += got
            round_p50[target.name].append(percentile(got, 0.5) * 1000)
            for c in levels:
                rates[target.name][c].append(throughput(target, per_round, c))
            cpu[target.name][0] += cpu_seconds(target.pid) - before
            cpu[target.name][1] += per_round * (1 + len(levels)) + 20 + 50 * len(levels)
    return {
        t.name: {
            **summary(latencies[t.name]),
            "calls": len(latencies[t.name]),
            "p99_ms": percentile(latencies[t.name], 0.99) * 1000,
            "server_cpu_us_per_call": cpu[t.name][0] / cpu[t.name][1] * 1e6,
            "rounds_p50_ms": round_p50[t.name],
            "calls_per_s": {c: statistics.median(v) for c, v in rates[t.name].items()},
            "rounds_calls_per_s": rates[t.name],
        }
        for t in targets
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.grpc_overhead", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=2000, help="sequential calls per side (split over rounds)")
    parser.add_argument("--rounds", type=int, default=10, help="alternating rounds")
    parser.add_argument("--concurrency", default="1,8", help="calls in flight for the throughput runs")
    parser.add_argument(
        "--service-arg",
        action="append",
        default=[],
        help="extra svc-llm flag, e.g. --service-arg=--log-level=warning (to locate a cost)",
    )
    parser.add_argument("--log-dir", type=Path, default=None, help="server logs (default: a temp dir)")
    parser.add_argument("--echo-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.echo_server:
        asyncio.run(serve_echo(args.port))
        return
    levels = [int(c) for c in args.concurrency.split(",")]
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="bench-grpc-"))
    service_args = [
        "--load-mode",
        "lazy",
        "--device",
        "cpu",
        *[part for arg in args.service_arg for part in arg.split("=", 1)],
    ]
    echo_proc, echo_address = start_echo(log_dir)
    try:
        service = start_service("llm", log_dir, *service_args)
        try:
            with grpc.insecure_channel(service.address) as channel:
                reply = channel.unary_unary(MODEL_STATUS)(b"", timeout=10)
            llm_pb2.ModelStatusResponse.FromString(reply)  # it is what we think it is
            targets = [
                Target("bare echo", echo_address, f"/{ECHO_SERVICE}/{ECHO_METHOD}", b"\0" * len(reply), echo_proc.pid),
                Target("llm ModelStatus", service.address, MODEL_STATUS, b"", service.process.pid),
            ]
            load_before = os.getloadavg()
            figures = measure(targets, args.calls, args.rounds, levels)
        finally:
            service.stop()
    finally:
        echo_proc.stop()
    echo, tiny = figures["bare echo"], figures["llm ModelStatus"]
    columns = ["server", "calls", "p50 ms", "p95 ms", "p99 ms", *[f"calls/s @{c}" for c in levels], "CPU µs/call"]
    rows = [
        [
            name,
            f["calls"],
            f["p50_ms"],
            f["p95_ms"],
            f["p99_ms"],
            *[f["calls_per_s"][c] for c in levels],
            f["server_cpu_us_per_call"],
        ]
        for name, f in figures.items()
    ]
    rows.append(
        [
            "service / echo",
            "",
            tiny["p50_ms"] / echo["p50_ms"],
            tiny["p95_ms"] / echo["p95_ms"],
            tiny["p99_ms"] / echo["p99_ms"],
            *[tiny["calls_per_s"][c] / echo["calls_per_s"][c] for c in levels],
            tiny["server_cpu_us_per_call"] / echo["server_cpu_us_per_call"],
        ]
    )
    ratio = tiny["p50_ms"] / echo["p50_ms"]
    # The same ratio within each round (same background load), as a check on the pooled one.
    paired = statistics.median(t / e for t, e in zip(tiny["rounds_p50_ms"], echo["rounds_p50_ms"]))
    path = report(
        "grpc_overhead",
        columns,
        rows,
        extra={
            "calls": args.calls,
            "rounds": args.rounds,
            "concurrency": levels,
            "service_args": service_args,
            "reply_bytes": len(reply),
            "servers": figures,
            "targets": {
                "tiny_call_p50_vs_echo_p50": ratio,
                "paired_round_median": paired,
                "target": TARGET,
                "met": ratio <= TARGET,
            },
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
            "note": "client and both servers share this machine's CPUs; rounds alternate the servers",
        },
    )
    print(
        f"tiny call p50 {tiny['p50_ms']:.3f} ms = {ratio:.2f}x bare echo p50 {echo['p50_ms']:.3f} ms "
        f"(median of the rounds' ratios {paired:.2f}x; target <= {TARGET}) -> "
        f"{'met' if ratio <= TARGET else 'MISSED'}; "
        f"wrote {path.relative_to(RESULTS.parent.parent)}"
    )


if __name__ == "__main__":
    main()
