"""Task tracking's cost and its query speed, in one run.

    .venv/bin/python -m bench.tracking [--tasks 3000] [--hops 200] [--rows 100000,1000000]

1. Throughput and hop latency of a no-op task with tracking off and on, side
   by side: a real worker (prefork, 2 processes, its drainer thread when on)
   on Redis, the producer in this process. tasks/s = N tasks sent at once /
   time until the last result; hop = one send → result round trip; chain hop =
   a 10-link chain's time / 10. With tracking on, also the drain lag (last
   result → last row in PostgreSQL) and a loss check (N rows, all SUCCESS).
   Target (docs/decisions/0014-benchmark-targets.md): tracked ≥ 0.6 × untracked tasks/s, 0 records lost.
2. Query times on 100k and 1M generated task rows (a separate database,
   rows generated server-side with generate_series): pipeline status, history
   first page / filtered / 10 pages deep by cursor, metrics over 24 h.

Redis: AIWORKER_BENCH_REDIS_URL (default redis://127.0.0.1:6379/12, flushed).
PostgreSQL: AIWORKER_BENCH_PG_ADMIN (default postgresql://postgres@127.0.0.1:5432/postgres);
the bench creates and drops its own databases. Writes bench/results/tracking.json.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import redis
from celery import Celery, chain

from aiworker_local.infra import free_port, port_open
from aiworker_local.postgres import has_pgvector, start_postgres
from aiworker_local.procs import ManagedProcess
from bench.common import percentile, report, summary, time_calls
from orchestrator.assembly import registry_queries, tracked_app
from orchestrator.pipelines.registry import PIPELINES
from orchestrator.settings import OrchestratorSettings
from orchestrator.storage.db import upgrade

NOOP = "bench.noop"
QUEUE = "cpu_queue"
TARGET_RATIO = 0.6
TARGETS = {
    "pipeline_status": "p50 ≤ 10 at 1M",
    "history_first_page": "p95 ≤ 50 at 1M",
    "history_status_failure": "p95 ≤ 50 at 1M",
    "history_by_task_name": "p95 ≤ 50 at 1M",
}
STAGES = PIPELINES["resume"].stage_names


def register_noop(app: Celery) -> Any:
    @app.task(name=NOOP, shared=False)  # not shared: other apps in the process stay as routed
    def noop(i: int = 0) -> int:
        return i

    return noop


# -- the worker (a subprocess: python -m bench.tracking --worker) ------------------------
WORKER_FLAGS = ("-Q", QUEUE, "-c", "2", "-P", "prefork", "--without-gossip", "--without-mingle", "--without-heartbeat")


def run_worker(loglevel: str, hostname: str, app: Celery | None = None) -> None:
    """A prefork worker (2 processes) on QUEUE; by default the orchestrator app with the no-op."""
    if app is None:
        app = tracked_app(OrchestratorSettings())
        register_noop(app)
    app.worker_main(["worker", *WORKER_FLAGS, "-n", hostname, "-l", loglevel])


@contextmanager
def worker(
    env: dict[str, str],
    log_dir: Path,
    name: str,
    loglevel: str,
    module: str = "bench.tracking",
    extra: Sequence[str] = (),
) -> Iterator[ManagedProcess]:
    """`python -m <module> --worker --loglevel L --hostname <name>@bench <extra>` as a subprocess."""
    argv = [sys.executable, "-m", module, "--worker", "--loglevel", loglevel, "--hostname", f"{name}@bench", *extra]
    proc = ManagedProcess(
        f"bench-worker-{name}",
        argv,
        log_dir / f"bench-worker-{name}.log",
        env=env,
        cwd=Path(__file__).resolve().parents[1],
    ).start()
    try:
        yield proc
    finally:
        proc.stop()


def env_for(redis_url: str, database_url: str, tracking: bool, spool: Path) -> dict[str, str]:
    return {
        "AIWORKER_BROKER_URL": redis_url,
        "AIWORKER_DATABASE_URL": database_url,
        "AIWORKER_TRACKING_ENABLED": str(tracking).lower(),
        "AIWORKER_TRACKING_SPOOL_DIR": str(spool),
        "AIWORKER_LOG_FORMAT": "json",
        "AIWORKER_WORKER_SEND_EVENTS": "false",
    }


def settings_for(env: dict[str, str]) -> OrchestratorSettings:
    """The settings a process started with `env` (AIWORKER_* variables) builds."""
    return OrchestratorSettings(
        **{k.removeprefix("AIWORKER_").lower(): v for k, v in env.items() if k.startswith("AIWORKER_")}
    )


def producer(env: dict[str, str]) -> tuple[Celery, Any]:
    app = tracked_app(settings_for(env))
    return app, register_noop(app)


# -- part 1: throughput and hops ------------------------------------------------------
def wait_done(client: redis.Redis, ids: list[str], timeout: float) -> float:
    """Polls the result backend until every id has SUCCESS (cheaply: the last ids
    first, since the queue is FIFO); returns when the last ones were seen done."""
    deadline = time.monotonic() + timeout
    seen_last = 0.0
    for first, batch in enumerate((ids[-2:], ids)):
        remaining = list(batch)
        while remaining:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(remaining)} of {len(ids)} tasks not done after {timeout}s")
            values = client.mget([f"celery-task-meta-{i}" for i in remaining])
            remaining = [i for i, v in zip(remaining, values) if v is None or b'"SUCCESS"' not in v]
            if remaining:
                time.sleep(0.005)
        if first == 0:
            seen_last = time.perf_counter()
    return seen_last


def throughput(
    app: Celery, noop: Any, client: redis.Redis, hostname: str, tasks: int
) -> tuple[float, float, list[str]]:
    """(publish rate, worker rate, ids): the worker stops consuming, N tasks are
    queued, then it consumes them all; worker rate = N / time to drain."""
    app.control.cancel_consumer(QUEUE, destination=[hostname], reply=True, timeout=5)
    ids = [str(uuid.uuid4()) for _ in range(tasks)]
    started = time.perf_counter()
    for i, task_id in enumerate(ids):
        noop.apply_async((i,), task_id=task_id, queue=QUEUE)
    published = time.perf_counter()
    app.control.add_consumer(QUEUE, destination=[hostname], reply=True, timeout=5)
    consuming = time.perf_counter()
    done = wait_done(client, ids, timeout=max(120, tasks / 20))
    return tasks / (published - started), tasks / (done - consuming), ids


def hops(app: Celery, noop: Any, samples: int) -> tuple[list[float], float]:
    single = time_calls(lambda: noop.apply_async((1,), queue=QUEUE).get(timeout=30), samples, warmup=10)
    links = 10
    chains = []
    for _ in range(max(5, samples // 20)):
        started = time.perf_counter()
        chain(*[noop.si(i).set(queue=QUEUE) for i in range(links)]).apply_async().get(timeout=60)
        chains.append((time.perf_counter() - started) / links)
    return single, percentile(chains, 0.5)


def wait_ready(app: Celery, proc: ManagedProcess) -> None:
    proc.wait_until(lambda: bool(app.control.inspect(timeout=1).ping()), 60, "worker answering ping")


def tracked_rows(database_url: str, ids: list[str]) -> tuple[int, int]:
    with psycopg.connect(database_url.replace("+psycopg", "")) as conn:
        row = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE status = 'SUCCESS') FROM task_info WHERE task_id = ANY(%s)", (ids,)
        ).fetchone()
    return int(row[0]), int(row[1])


def consume_only(app: Celery, hostname: str, others: list[str]) -> None:
    for other in others:
        app.control.cancel_consumer(QUEUE, destination=[other], reply=True, timeout=5)
    app.control.add_consumer(QUEUE, destination=[hostname], reply=True, timeout=5)


@dataclass
class Mode:
    """One side of a comparison: the producer's app and task, the worker's environment
    and command (`python -m <module> --worker ... <worker_args>`), tracked or not."""

    name: str
    env: dict[str, str]
    app: Celery
    task: Any  # what throughput() and hops() send: apply_async((i,), ...) and si(i)
    tracked: bool
    module: str = "bench.tracking"
    worker_args: tuple[str, ...] = ()

    @property
    def hostname(self) -> str:
        return f"{self.name}@bench"


def measure_modes(
    database_url: str,
    modes: Sequence[Mode],
    client: redis.Redis,
    tasks: int,
    hop_samples: int,
    rounds: int,
    log_dir: Path,
    loglevel: str,
) -> dict[str, dict[str, Any]]:
    """Every mode's worker runs throughout (only one consumes at a time); the
    modes take turns for `rounds` rounds (order reversed every other round) and
    each figure is the median, so a neighbour's load hits all modes alike."""
    samples: dict[str, dict[str, list[float]]] = {m.name: {} for m in modes}
    with ExitStack() as stack:
        procs = [stack.enter_context(worker(m.env, log_dir, m.name, loglevel, m.module, m.worker_args)) for m in modes]
        for mode, proc in zip(modes, procs):
            wait_ready(mode.app, proc)
        for round_ in range(rounds):
            for mode in modes if round_ % 2 == 0 else list(reversed(modes)):
                mode.app.set_current()  # publishes are tracked through the current app
                consume_only(mode.app, mode.hostname, [m.hostname for m in modes if m is not mode])
                if round_ == 0:
                    throughput(mode.app, mode.task, client, mode.hostname, 200)  # warm-up
                publish_rate, rate, ids = throughput(mode.app, mode.task, client, mode.hostname, tasks)
                got = samples[mode.name]
                got.setdefault("tasks_per_s", []).append(rate)
                got.setdefault("publish_per_s", []).append(publish_rate)
                if mode.tracked:
                    finished = time.perf_counter()
                    deadline = time.monotonic() + 120
                    while tracked_rows(database_url, ids)[1] < len(ids) and time.monotonic() < deadline:
                        time.sleep(0.05)
                    got.setdefault("drain_lag_s", []).append(time.perf_counter() - finished)
                    rows, succeeded = tracked_rows(database_url, ids)
                    got.setdefault("lost", []).append(len(ids) - succeeded)
                    got.setdefault("duplicated", []).append(rows - len(ids))
                single, chain_hop = hops(mode.app, mode.task, hop_samples)
                for key, value in summary(single).items():
                    got.setdefault(f"hop_{key}", []).append(value)
                got.setdefault("chain_hop_ms", []).append(chain_hop * 1000)
    out: dict[str, dict[str, Any]] = {}
    for m in modes:
        out[m.name] = {
            k: (sum(v) if k in ("lost", "duplicated") else percentile(v, 0.5)) for k, v in samples[m.name].items()
        }
        out[m.name]["rounds"] = dict(samples[m.name])
    return out


def tracking_modes(redis_url: str, database_url: str, log_dir: Path) -> list[Mode]:
    """Tracking off and on: the orchestrator app with the no-op on both sides."""
    modes = []
    for name in ("off", "on"):
        env = env_for(redis_url, database_url, name == "on", log_dir / f"spool-{name}")
        app, noop = producer(env)
        modes.append(Mode(name, env, app, noop, tracked=name == "on"))
    return modes


# -- part 2: queries on generated rows --------------------------------------------------
FILL_SQL = """
WITH p AS (  -- pipelines spread evenly over 7 days in insertion order, as they arrive in production
    SELECT g AS n, gen_random_uuid()::text AS pipeline_id,
           now() - interval '7 days' * (1 - g::float8 / %(total)s) + random() * interval '1 second' AS created
    FROM generate_series(%(first)s, %(last)s) g
), t AS (
    SELECT p.*, s.idx, (ARRAY[%(s0)s, %(s1)s, %(s2)s])[s.idx + 1] AS task_name, random() AS r
    FROM p CROSS JOIN generate_series(0, 2) AS s(idx)
)
INSERT INTO task_info (task_id, task_name, status, status_rank, status_at, args, kwargs, result, error_type,
                       error_message, retry_count, root_task_id, parent_task_id, chain_total, pipeline_id,
                       pipeline, stage_index, queue, worker, created_at, started_at, completed_at, runtime)
SELECT gen_random_uuid()::text, task_name,
       CASE WHEN r < 0.9 THEN 'SUCCESS' WHEN r < 0.95 THEN 'FAILURE' ELSE 'SKIPPED' END,
       5, extract(epoch FROM created), '[{"pdf": "blob:sha256:0"}]', '{}', '{"chunks": 3}',
       CASE WHEN r BETWEEN 0.9 AND 0.95 THEN 'ServiceCallError' END,
       CASE WHEN r BETWEEN 0.9 AND 0.95 THEN 'ServiceCallError: bad PDF' END,
       (r * 10)::int %% 3, pipeline_id, NULL, 3, pipeline_id, 'resume', idx,
       CASE WHEN idx = 1 THEN 'gpu_queue' ELSE 'cpu_queue' END, 'bench@host',
       created + idx * interval '1 second', created + idx * interval '1 second' + interval '50 ms',
       created + idx * interval '1 second' + (r * interval '900 ms'), r * 0.9
FROM t
"""
PIPELINE_SQL = """
INSERT INTO pipeline_info (pipeline_id, pipeline, request_id, root_task_id, stage_count, stages, created_at)
SELECT pipeline_id, 'resume', pipeline_id, pipeline_id, 3,
       jsonb_agg(jsonb_build_object('stage_index', stage_index, 'task_name', task_name, 'task_id', task_id)
                 ORDER BY stage_index),
       min(created_at)
FROM task_info WHERE pipeline_id IS NOT NULL GROUP BY pipeline_id
ON CONFLICT DO NOTHING
"""
# What the tracking writer materialises per pipeline (orchestrator/tracking/pipeline_view.py), in SQL.
STATE_SQL = """
UPDATE pipeline_info p SET stage_states = s.states, completed_steps = s.done,
       overall_state = CASE WHEN s.done = p.stage_count THEN 'SUCCESS'
                            WHEN s.failed > 0 THEN 'FAILURE' ELSE 'PROGRESS' END
FROM (SELECT pipeline_id,
             jsonb_agg(jsonb_build_object(
                 'task_id', task_id, 'task_name', task_name, 'stage_index', stage_index, 'status', status,
                 'rank', status_rank, 'at', status_at, 'created', extract(epoch FROM created_at),
                 'started', extract(epoch FROM started_at), 'completed', extract(epoch FROM completed_at),
                 'retry_count', retry_count, 'worker', worker, 'queue', queue, 'error_type', error_type,
                 'summary', left(coalesce(result::text, error_message), 200), 'runtime', runtime)
                 ORDER BY stage_index) AS states,
             count(*) FILTER (WHERE status = 'SUCCESS') AS done,
             count(*) FILTER (WHERE status = 'FAILURE') AS failed
      FROM task_info WHERE pipeline_id IS NOT NULL GROUP BY pipeline_id) s
WHERE p.pipeline_id = s.pipeline_id
"""


def fill(database_url: str, rows: int) -> None:
    """`rows` task rows (3 per pipeline, 7 days' worth) in an empty database; ANALYZEd."""
    dsn = database_url.replace("+psycopg", "")
    with psycopg.connect(dsn, autocommit=True) as conn:
        pipelines = rows // 3
        for first in range(1, pipelines + 1, 50_000):
            conn.execute(
                FILL_SQL,
                {
                    "first": first,
                    "last": min(first + 49_999, pipelines),
                    "total": pipelines,
                    "s0": STAGES[0],
                    "s1": STAGES[1],
                    "s2": STAGES[2],
                },
            )
        conn.execute(PIPELINE_SQL)
        conn.execute(STATE_SQL)
        conn.execute("VACUUM ANALYZE task_info")
        conn.execute("VACUUM ANALYZE pipeline_info")


def query_times(settings: OrchestratorSettings, repeat: int) -> dict[str, dict[str, float]]:
    queries = registry_queries(settings)
    with psycopg.connect(settings.tracking_database_url.replace("+psycopg", "")) as conn:
        ids = [r[0] for r in conn.execute("SELECT pipeline_id FROM pipeline_info TABLESAMPLE SYSTEM (1) LIMIT 200")]
    random.seed(7)

    def deep_page() -> None:
        cursor = None
        for _ in range(10):
            cursor = queries.history(hours=24 * 7, limit=100, cursor=cursor).next_cursor

    cases = {
        "pipeline_status": lambda: queries.pipeline_status(random.choice(ids)),
        "history_first_page": lambda: queries.history(hours=24, limit=100),
        "history_status_failure": lambda: queries.history(hours=24 * 7, status="FAILURE", limit=100),
        "history_by_task_name": lambda: queries.history(hours=24, task_name=STAGES[1], limit=100),
        "history_10_pages_deep": deep_page,
        "metrics_24h": lambda: queries.metrics(24),
    }
    out = {}
    for name, fn in cases.items():
        n = max(3, repeat // 10) if name in ("metrics_24h", "history_10_pages_deep") else repeat
        out[name] = summary(time_calls(fn, n, warmup=2))
    return out


@contextmanager
def pgvector_server() -> Iterator[str]:
    """An admin URL of a PostgreSQL with pgvector: AIWORKER_BENCH_PG_ADMIN, else the local
    server when it has pgvector, else one started for the run from pgserver's binaries."""
    admin_url = os.environ.get("AIWORKER_BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
    if os.environ.get("AIWORKER_BENCH_PG_ADMIN") or (port_open("127.0.0.1", 5432) and has_pgvector(admin_url)):
        yield admin_url
        return
    port = free_port()
    server = start_postgres(
        "127.0.0.1", port, Path(tempfile.gettempdir()) / f"bench-pg-{port}.log", database="postgres"
    )
    try:
        server.process.wait_until(lambda: port_open("127.0.0.1", port), 60, "PostgreSQL accepting connections")
        time.sleep(1)
        yield server.url.replace("postgresql+psycopg://", "postgresql://", 1)
    finally:
        server.stop()


@contextmanager
def scratch_database() -> Iterator[str]:
    """A database of its own, migrated, on a PostgreSQL with pgvector (pgvector_server)."""
    with pgvector_server() as admin_url:
        name = f"aiworker_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = admin_url.replace("postgresql://", "postgresql+psycopg://", 1).rsplit("/", 1)[0] + f"/{name}"
        try:
            upgrade(url)
            yield url
        finally:
            with psycopg.connect(admin_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def add_mode_arguments(parser: argparse.ArgumentParser, rounds_help: str) -> None:
    """The flags of the benches that take turns between worker modes (this one, bench.orchestration)."""
    parser.add_argument("--tasks", type=int, default=3000, help="tasks per throughput run")
    parser.add_argument("--hops", type=int, default=200, help="sequential round trips per latency run")
    parser.add_argument("--rounds", type=int, default=3, help=rounds_help)
    parser.add_argument("--loglevel", default="WARNING", help="the bench workers' -l (the same in every mode)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.tracking", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_mode_arguments(parser, "alternating off/on rounds (medians reported)")
    parser.add_argument("--rows", default="100000,1000000", help="task row counts for the query timings")
    parser.add_argument("--query-repeat", type=int, default=50)
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-queries", action="store_true")
    parser.add_argument("--hostname", default="bench@bench", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        run_worker(args.loglevel, args.hostname)
        return
    redis_url = os.environ.get("AIWORKER_BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
    columns = ["measure", "tracking off", "tracking on", "on / off (or target)"]
    rows: list[list[Any]] = []
    extra: dict[str, Any] = {"tasks": args.tasks, "target_ratio": TARGET_RATIO}
    with tempfile.TemporaryDirectory(prefix="bench-tracking-") as tmp:
        if not args.skip_throughput:
            with scratch_database() as database_url:
                client = redis.Redis.from_url(redis_url)
                client.flushdb()
                sides = tracking_modes(redis_url, database_url, Path(tmp))
                modes = measure_modes(
                    database_url, sides, client, args.tasks, args.hops, args.rounds, Path(tmp), args.loglevel
                )
                for side in sides:
                    side.app.close()
            off, on = modes["off"], modes["on"]
            for key in ("tasks_per_s", "publish_per_s", "hop_p50_ms", "hop_p95_ms", "chain_hop_ms"):
                rows.append([key, off[key], on[key], on[key] / off[key]])
            rows.append(["drain lag s (last result → last row)", "-", on["drain_lag_s"], "-"])
            rows.append(["records lost (all rounds)", "-", int(on["lost"]), "-"])
            rows.append(["records duplicated (all rounds)", "-", int(on["duplicated"]), "-"])
            extra["throughput"] = modes
            extra["meets_target"] = (
                on["tasks_per_s"] >= TARGET_RATIO * off["tasks_per_s"] and on["lost"] == 0 and on["duplicated"] == 0
            )
        if not args.skip_queries:
            extra["queries"] = {}
            for count in sorted(int(c) for c in args.rows.split(",")):
                with scratch_database() as database_url:
                    settings = OrchestratorSettings(database_url=database_url, broker_url=redis_url)
                    started = time.perf_counter()
                    fill(database_url, count)
                    timings = query_times(settings, args.query_repeat)
                    extra["queries"][count] = {"fill_s": time.perf_counter() - started, **timings}
                    for name, t in timings.items():
                        rows.append(
                            [
                                f"{name} ms p50/p95, {count:,} rows",
                                "-",
                                f"{t['p50_ms']:.1f} / {t['p95_ms']:.1f}",
                                TARGETS.get(name, ""),
                            ]
                        )
    path = report("tracking", columns, rows, extra)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
