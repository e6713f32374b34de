"""Orchestration cost: hop latency and tasks/s of Celery alone, of the
orchestrator app with tracking, and of a thin stage, on one Redis broker with
the same Celery settings, in one run.

    .venv/bin/python -m bench.orchestration [--tasks 3000] [--hops 200] [--rounds 3]
                                            [--conf task_track_started=false ...] [--worker-env K=V ...]

Modes (each a real prefork worker subprocess, 2 processes, on cpu_queue; the
producer is this process; every app gets orchestrator.app.celery_config of the
same OrchestratorSettings):
- bare: a plain Celery() app and a no-op task: no aiworker Resources, no
  tracking, Celery's own logging (the engine's floor, the baseline);
- untracked: the orchestrator app (create_app) with tracking off and a no-op
  task (bench/tracking.py's "off": what create_app adds to bare without tracking);
- tracked: the orchestrator app with tracking on and a no-op task;
- thin: the orchestrator app with tracking on and a StageTask (bind=True) that
  validates a small pydantic input, reports PROGRESS, makes one tiny gRPC call
  (svc-llm ModelStatus on a lazy svc-llm, through the app's lazy channel pool,
  self.rpc() as the call context) and returns; its messages carry a pipeline's
  headers (pipeline_id, pipeline, stage_index, stage_count, request_id), so
  StageTask.on_success reports too, as a stage's would;
- stripped: thin in a worker whose tracing hooks (svc_runtime.tracing) are replaced by
  functions that do nothing, as if the code had no tracing: thin against it is what
  tracing costs when off (the default);
- traced: thin with OpenTelemetry tracing on in the worker (OTEL_EXPORTER_OTLP_ENDPOINT: a sink in
  this process that takes OTLP/HTTP exports and drops them): what tracing costs a stage.
Measured as bench/tracking.py does (its helpers): hop = one send → result round
trip, sequential; chain hop = a 10-link chain's time / 10; tasks/s = N tasks
queued while the worker does not consume, then drained. For the tracked modes,
records lost / duplicated in PostgreSQL. Rounds alternate the modes; medians.
Targets (docs/decisions/0014-benchmark-targets.md): thin hop p50 ≤ 2 × bare hop p50; tracked tasks/s ≥ 0.6 × bare
tasks/s with 0 records lost.

`--conf key=value` overrides a Celery setting in every mode (to locate a cost,
e.g. task_track_started=false); `--worker-env K=V` sets a variable for the
workers of the orchestrator-app modes (e.g. AIWORKER_LOG_LEVEL=warning).
Redis: AIWORKER_BENCH_REDIS_URL (default redis://127.0.0.1:6379/12, flushed).
PostgreSQL: AIWORKER_BENCH_PG_ADMIN (a scratch database is created and dropped).
Writes bench/results/orchestration.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import tempfile
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis
from celery import Celery
from pydantic import BaseModel, Field

from aiworker_local.services import start_service
from bench.common import RESULTS, report
from bench.tracking import (
    Mode,
    add_mode_arguments,
    env_for,
    measure_modes,
    register_noop,
    run_worker,
    scratch_database,
    settings_for,
)
from orchestrator.app import celery_config
from orchestrator.assembly import tracked_app
from orchestrator.clients import LlmClient
from orchestrator.pipelines.stage import StageTask

THIN = "bench.thin"
MODES = ("bare", "untracked", "tracked", "stripped", "thin", "traced")
TRACKED = ("tracked", "stripped", "thin", "traced")
STAGES = ("stripped", "thin", "traced")
HOP_TARGET, RATE_TARGET = 2.0, 0.6
CONF_ENV = "AIWORKER_BENCH_CELERY_CONF"  # JSON of the --conf overrides, for the workers


class ThinInput(BaseModel):
    text: str = Field(min_length=1, max_length=1000)
    n: int = Field(0, ge=0)


def register_thin(app: Celery) -> Any:
    @app.task(name=THIN, bind=True, base=StageTask, shared=False)
    def thin(self: StageTask, payload: dict[str, Any]) -> dict[str, Any]:
        data = self.validate(ThinInput, payload)
        self.report("PROGRESS", 50, "asking the model service")
        status = self.resources.client(LlmClient).model_status(self.rpc())
        return {"n": data.n, "model": status.model, "state": int(status.state)}

    return thin


class AsStage:
    """The thin task as throughput()/hops() send it: apply_async((i,)) and si(i)
    become a stage's message (its payload and a pipeline's headers)."""

    def __init__(self, task: Any) -> None:
        self.task = task

    @staticmethod
    def headers() -> dict[str, Any]:
        """Each message a stage of a pipeline of its own, as in use (one pipeline id for
        thousands of tasks would make tracking re-read them all at every batch)."""
        pipeline_id = str(uuid.uuid4())
        return {
            "pipeline_id": pipeline_id,
            "pipeline": "bench",
            "stage_index": 1,
            "stage_count": 3,
            "request_id": pipeline_id,
        }

    @staticmethod
    def payload(i: int) -> dict[str, Any]:
        return {"text": f"resume line {i}: five years of Python", "n": i}

    def apply_async(self, args: tuple[int], **options: Any) -> Any:
        return self.task.apply_async((self.payload(args[0]),), headers=self.headers(), **options)

    def si(self, i: int) -> Any:
        return self.task.si(self.payload(i)).set(headers=self.headers())


def strip_tracing() -> None:
    """This process as if svc_runtime.tracing did not exist: each hook the code calls does nothing."""
    from svc_runtime import tracing

    tracing.enabled = lambda: False
    tracing.configure = lambda default_service_name: False
    tracing.set_attributes = lambda **attributes: None
    tracing.attached = lambda traceparent: contextlib.nullcontext()
    tracing.current_ids = lambda: None


def build_app(mode: str, env: dict[str, str], conf: dict[str, Any]) -> tuple[Celery, Any]:
    """The app and task of a mode, in the producer (env given) or a worker (its environment)."""
    settings = settings_for(env)
    if mode == "bare":
        app = Celery("bench-bare", set_as_current=True)
        app.conf.update(celery_config(settings))
        app.conf.update(conf)
        return app, register_noop(app)
    app = tracked_app(settings)
    app.conf.update(conf)
    return app, (register_thin(app) if mode in STAGES else register_noop(app))


class TraceSink:
    """An OTLP/HTTP endpoint that answers every export with success and keeps nothing."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        sink = self
        self.exports = 0

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                sink.exports += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()


def modes_for(
    redis_url: str,
    database_url: str,
    llm_address: str,
    log_dir: Path,
    conf: dict[str, Any],
    worker_env: dict[str, str],
    trace_url: str,
) -> list[Mode]:
    modes = []
    for name in MODES:
        env = {
            **env_for(redis_url, database_url, name in TRACKED, log_dir / f"spool-{name}"),
            # each tracked mode its own outbox, drained by its own worker
            "AIWORKER_TRACKING_OUTBOX": f"aiworker:bench:outbox:{name}",
            "AIWORKER_LLM_ADDRESS": llm_address,
            CONF_ENV: json.dumps(conf),
            **(worker_env if name != "bare" else {}),
            **({"OTEL_EXPORTER_OTLP_ENDPOINT": trace_url, "OTEL_SERVICE_NAME": "bench"} if name == "traced" else {}),
        }
        app, task = build_app(name, env, conf)
        modes.append(
            Mode(
                name,
                env,
                app,
                AsStage(task) if name in STAGES else task,
                tracked=name in TRACKED,
                module="bench.orchestration",
                worker_args=("--mode", name),
            )
        )
    return modes


def parse_conf(items: list[str]) -> dict[str, Any]:
    out = {}
    for item in items:
        key, value = item.split("=", 1)
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.orchestration", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_mode_arguments(parser, "rounds of the modes taking turns (medians reported)")
    parser.add_argument("--conf", action="append", default=[], help="Celery setting override, every mode: key=json")
    parser.add_argument(
        "--worker-env",
        action="append",
        default=[],
        help="K=V for the orchestrator-app modes' workers, e.g. AIWORKER_LOG_LEVEL=warning",
    )
    parser.add_argument("--log-dir", type=Path, default=None, help="worker and service logs (default: a temp dir)")
    parser.add_argument("--mode", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--hostname", default="bench@bench", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        if args.mode == "stripped":
            strip_tracing()
        app, _ = build_app(args.mode, dict(os.environ), json.loads(os.environ.get(CONF_ENV, "{}")))
        run_worker(args.loglevel, args.hostname, app)
        return
    redis_url = os.environ.get("AIWORKER_BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
    conf = parse_conf(args.conf)
    worker_env = dict(item.split("=", 1) for item in args.worker_env)
    log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="bench-orchestration-"))
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    load_before = os.getloadavg()
    service = start_service("llm", log_dir, "--load-mode", "lazy", "--device", "cpu")
    sink = TraceSink()
    try:
        with scratch_database() as database_url:
            modes = modes_for(redis_url, database_url, service.address, log_dir, conf, worker_env, sink.url)
            try:
                figures = measure_modes(
                    database_url, modes, client, args.tasks, args.hops, args.rounds, log_dir, args.loglevel
                )
            finally:
                for mode in modes:
                    mode.app.close()
    finally:
        service.stop()
        sink.stop()
    if not sink.exports:
        raise SystemExit("the traced worker exported no spans: tracing was not on")
    bare = figures["bare"]
    columns = ["measure", *MODES, *[f"{m}/bare" for m in MODES[1:]]]
    rows: list[list[Any]] = []
    for key in ("hop_p50_ms", "hop_p95_ms", "chain_hop_ms", "tasks_per_s", "publish_per_s"):
        rows.append([key, *[figures[m][key] for m in MODES], *[figures[m][key] / bare[key] for m in MODES[1:]]])
    for key in ("drain_lag_s", "lost", "duplicated"):
        cells = [
            (figures[m][key] if key == "drain_lag_s" else int(figures[m][key])) if m in TRACKED else "-" for m in MODES
        ]
        rows.append([key + (" (all rounds)" if key != "drain_lag_s" else ""), *cells, *[""] * (len(MODES) - 1)])
    hop_ratio = figures["thin"]["hop_p50_ms"] / bare["hop_p50_ms"]
    # The same ratio within each round (same background load), as a check on the medians' ratio.
    paired = statistics.median(
        t / b for t, b in zip(figures["thin"]["rounds"]["hop_p50_ms"], bare["rounds"]["hop_p50_ms"])
    )
    rate_ratio = figures["tracked"]["tasks_per_s"] / bare["tasks_per_s"]
    off_hop = figures["thin"]["hop_p50_ms"] / figures["stripped"]["hop_p50_ms"]
    off_paired = statistics.median(
        t / s for t, s in zip(figures["thin"]["rounds"]["hop_p50_ms"], figures["stripped"]["rounds"]["hop_p50_ms"])
    )
    traced_hop = figures["traced"]["hop_p50_ms"] / figures["thin"]["hop_p50_ms"]
    traced_rate = figures["traced"]["tasks_per_s"] / figures["thin"]["tasks_per_s"]
    intact = all(figures[m]["lost"] == 0 and figures[m]["duplicated"] == 0 for m in TRACKED)
    targets = {
        "thin_hop_p50_vs_bare": hop_ratio,
        "thin_hop_paired_round_median": paired,
        "hop_target": HOP_TARGET,
        "hop_met": hop_ratio <= HOP_TARGET,
        "tracked_tasks_per_s_vs_bare": rate_ratio,
        "rate_target": RATE_TARGET,
        "records_lost": int(sum(figures[m]["lost"] for m in TRACKED)),
        "records_duplicated": int(sum(figures[m]["duplicated"] for m in TRACKED)),
        "rate_met": rate_ratio >= RATE_TARGET and intact,
        "tracing_off_hop_p50_vs_stripped": off_hop,
        "tracing_off_hop_paired_round_median": off_paired,
        "traced_hop_p50_vs_thin": traced_hop,
        "traced_tasks_per_s_vs_thin": traced_rate,
        "trace_exports": sink.exports,
    }
    path = report(
        "orchestration",
        columns,
        rows,
        extra={
            "tasks": args.tasks,
            "hops": args.hops,
            "rounds": args.rounds,
            "worker_loglevel": args.loglevel,
            "conf_overrides": conf,
            "worker_env": worker_env,
            "modes": figures,
            "targets": targets,
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
            "note": "producer, workers, Redis, PostgreSQL and svc-llm share this machine's CPUs; modes take turns",
        },
    )
    print(
        f"thin hop p50 {figures['thin']['hop_p50_ms']:.2f} ms = {hop_ratio:.2f}x bare {bare['hop_p50_ms']:.2f} ms "
        f"(rounds' median {paired:.2f}x; target <= {HOP_TARGET}) -> "
        f"{'met' if targets['hop_met'] else 'MISSED'}; tracked "
        f"{figures['tracked']['tasks_per_s']:.0f} tasks/s = {rate_ratio:.2f}x bare {bare['tasks_per_s']:.0f} "
        f"(target >= {RATE_TARGET}, {targets['records_lost']} lost, {targets['records_duplicated']} duplicated) "
        f"-> {'met' if targets['rate_met'] else 'MISSED'}; tracing off: thin hop p50 {off_hop:.2f}x stripped "
        f"(rounds' median {off_paired:.2f}x); tracing on: hop p50 {traced_hop:.2f}x and tasks/s "
        f"{traced_rate:.2f}x thin; wrote {path.relative_to(RESULTS.parent.parent)}"
    )


if __name__ == "__main__":
    main()
