"""Gateway query speed on 100k and 1M task rows: the real `aiworker-gateway`
over HTTP against the same queries in-process (TrackingQueries), in one run.

    .venv/bin/python -m bench.gateway [--rows 100000,1000000] [--repeat 200] [--rounds 4]

For each row count: a scratch database filled as bench/tracking.py fills it
(3 stages per pipeline over 7 days, generate_series, ANALYZEd), an
`aiworker-gateway` subprocess pointed at it (API keys on, no model services or
workers required), and an httpx keep-alive client sending the key. Timed:
- status: GET /api/v1/tasks/ai-pipeline/{id}/status, random pipeline ids from the table;
- history: GET /api/v1/tasks/history?hours=24&limit=100, and filtered by
  status=FAILURE (7 days) and by task_name (24 h).
Baseline: the same calls on TrackingQueries in this process (what the gateway
runs in a worker thread), same ids in the same order. Rounds alternate the
sides. Targets (docs/decisions/0014-benchmark-targets.md): status p50 ≤ 10 ms and history p95 ≤ 50 ms at 1M rows
(through the gateway). Redis: AIWORKER_BENCH_REDIS_URL (read only here);
PostgreSQL: AIWORKER_BENCH_PG_ADMIN. Writes bench/results/gateway.json.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psycopg

from aiworker_local.gateway_process import start_gateway
from bench.common import RESULTS, report, summary
from bench.tracking import STAGES, fill, scratch_database
from orchestrator.assembly import registry_queries
from orchestrator.settings import OrchestratorSettings
from orchestrator.tracking.reading.queries import TrackingQueries

API_KEY = "bench-key-0123456789abcdef"
STATUS_P50_MS, HISTORY_P95_MS = 10.0, 50.0
TARGET_ROWS = 1_000_000
# name → (path and query of the REST call, the same call on TrackingQueries); both take a pipeline id
CASES: dict[str, tuple[Callable[[str], tuple[str, dict]], Callable[[TrackingQueries, str], Any]]] = {
    "status": (lambda pid: (f"/api/v1/tasks/ai-pipeline/{pid}/status", {}), lambda q, pid: q.pipeline_status(pid)),
    "history": (
        lambda _: ("/api/v1/tasks/history", {"hours": 24, "limit": 100}),
        lambda q, _: q.history(hours=24, limit=100),
    ),
    "history_failure_7d": (
        lambda _: ("/api/v1/tasks/history", {"hours": 168, "status": "FAILURE", "limit": 100}),
        lambda q, _: q.history(hours=168, status="FAILURE", limit=100),
    ),
    "history_by_task_name": (
        lambda _: ("/api/v1/tasks/history", {"hours": 24, "task_name": STAGES[1], "limit": 100}),
        lambda q, _: q.history(hours=24, task_name=STAGES[1], limit=100),
    ),
}


def pipeline_ids(database_url: str, n: int = 500) -> list[str]:
    with psycopg.connect(database_url.replace("+psycopg", "")) as conn:
        return [
            r[0] for r in conn.execute("SELECT pipeline_id FROM pipeline_info TABLESAMPLE SYSTEM (1) LIMIT %s", (n,))
        ]


def measure(http: Any, queries: TrackingQueries, ids: list[str], repeat: int, rounds: int) -> dict[str, dict]:
    """{case: {"gateway": [...], "in_process": [...]}} latencies in seconds."""

    def via_gateway(case: str, pid: str) -> None:
        path, params = CASES[case][0](pid)
        response = http.get(path, params=params)
        if response.status_code != 200:
            raise RuntimeError(f"GET {path} {params}: HTTP {response.status_code}: {response.text[:300]}")
        response.json()

    def in_process(case: str, pid: str) -> None:
        CASES[case][1](queries, pid)

    sides = {"gateway": via_gateway, "in_process": in_process}
    out: dict[str, dict[str, list[float]]] = {case: {side: [] for side in sides} for case in CASES}
    rng = random.Random(7)
    per_round = max(1, repeat // rounds)
    for case in CASES:
        for fn in sides.values():  # warm-up: connections, plans, caches
            for pid in ids[:5]:
                fn(case, pid)
        for round_ in range(rounds):
            picks = [rng.choice(ids) for _ in range(per_round)]  # the same ids on both sides
            for side in sides if round_ % 2 == 0 else list(reversed(sides)):
                for pid in picks:
                    started = time.perf_counter()
                    sides[side](case, pid)
                    out[case][side].append(time.perf_counter() - started)
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.gateway", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", default="100000,1000000", help="task row counts (comma separated)")
    parser.add_argument("--repeat", type=int, default=200, help="calls per case and side")
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds per case")
    parser.add_argument("--log-dir", type=Path, default=None, help="gateway logs (default: a temp dir)")
    args = parser.parse_args(argv)
    redis_url = os.environ.get("AIWORKER_BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    columns = [
        "query",
        "rows",
        "gateway p50 ms",
        "gateway p95 ms",
        "in-proc p50 ms",
        "in-proc p95 ms",
        "p50 ratio",
        "p95 ratio",
    ]
    rows: list[list[Any]] = []
    results: dict[int, dict[str, Any]] = {}
    for count in sorted(int(c) for c in args.rows.split(",")):
        with scratch_database() as database_url:
            started = time.perf_counter()
            fill(database_url, count)
            fill_s = time.perf_counter() - started
            ids = pipeline_ids(database_url)
            settings = OrchestratorSettings(database_url=database_url, broker_url=redis_url)
            queries = registry_queries(settings)
            env = {
                "AIWORKER_BROKER_URL": redis_url,
                "AIWORKER_DATABASE_URL": database_url,
                "AIWORKER_LOG_FORMAT": "json",
            }
            gateway = start_gateway(
                env, log_dir, API_KEY, name=f"bench-gateway-{count}", required_services="", required_queues=""
            )
            try:
                with gateway.client() as http:
                    raw = measure(http, queries, ids, args.repeat, args.rounds)
            finally:
                gateway.stop()
                queries.engine.dispose()
        results[count] = {"fill_s": fill_s}
        for case, sides in raw.items():
            g, p = summary(sides["gateway"]), summary(sides["in_process"])
            results[count][case] = {"gateway": g, "in_process": p, "calls": len(sides["gateway"])}
            rows.append(
                [
                    case,
                    f"{count:,}",
                    g["p50_ms"],
                    g["p95_ms"],
                    p["p50_ms"],
                    p["p95_ms"],
                    g["p50_ms"] / p["p50_ms"],
                    g["p95_ms"] / p["p95_ms"],
                ]
            )
    targets: dict[str, Any] = {
        "rows": TARGET_ROWS,
        "status_p50_ms_target": STATUS_P50_MS,
        "history_p95_ms_target": HISTORY_P95_MS,
    }
    at = results.get(TARGET_ROWS)
    if at:
        targets["status_p50_ms"] = at["status"]["gateway"]["p50_ms"]
        targets["history_p95_ms"] = max(at[c]["gateway"]["p95_ms"] for c in CASES if c.startswith("history"))
        targets["met"] = targets["status_p50_ms"] <= STATUS_P50_MS and targets["history_p95_ms"] <= HISTORY_P95_MS
    path = report(
        "gateway",
        columns,
        rows,
        extra={
            "repeat": args.repeat,
            "rounds": args.rounds,
            "results": results,
            "targets": targets,
            "note": "gateway, client, PostgreSQL and Redis share this machine's CPUs; rounds alternate the sides",
        },
    )
    if at:
        print(
            f"at {TARGET_ROWS:,} rows through the gateway: status p50 {targets['status_p50_ms']:.1f} ms "
            f"(target <= {STATUS_P50_MS}), worst history p95 {targets['history_p95_ms']:.1f} ms "
            f"(target <= {HISTORY_P95_MS}) -> {'met' if targets['met'] else 'MISSED'}",
            end="; ",
        )
    else:
        print(f"no {TARGET_ROWS:,}-row run: targets not judged", end="; ")
    print(f"wrote {path.relative_to(RESULTS.parent.parent)}")


if __name__ == "__main__":
    main()
