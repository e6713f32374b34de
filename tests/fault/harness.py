"""The fault tests' own back end, so killing and restarting parts never touches
the session stack: a private persistent redis-server (restartable), PostgreSQL
reached through a TCP proxy the test can close, a real parser and embedder, and
a worker per queue started through the console script. Visibility timeout and
time limits are short, so a crashed worker's tasks come back in seconds."""

from __future__ import annotations

import gc
import json
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kombu.exceptions
import redis
from celery import Celery

from aiworker_local.procs import ManagedProcess
from aiworker_local.services import RunningService, start_service
from aiworker_local.stack import make_app
from aiworker_local.workers import BIN, orchestrator_env, start_worker
from orchestrator import keys
from orchestrator.assembly import registry_queries
from orchestrator.pipelines.submission import SubmittedPipeline, submit
from orchestrator.storage.db import upgrade
from orchestrator.tracking.reading.queries import TrackingQueries
from svc_parser.model import sample_pdf
from tests.support.infra import start_redis
from tests.tracking.proxy import TcpProxy
from tests.tracking.rows import task_rows, wait_for

CLOSED = "127.0.0.1:1"  # the LLM and STT are not used here: nothing listens
VISIBILITY_TIMEOUT = 15  # > the hard time limit, as the settings demand
LOST_AFTER_SECONDS = 5  # beat re-sends a stage that is nowhere after this (every 2 s)
WORDS = (
    "Celery",
    "Redis",
    "gRPC",
    "PostgreSQL",
    "embedding",
    "pipeline",
    "worker",
    "retry",
    "broker",
    "queue",
    "tracking",
    "signal",
    "resume",
    "vector",
    "chunk",
    "service",
)


def resume_pdf(seed: int, pages: int = 4) -> bytes:
    """A few pages of distinct text: a handful of chunks to embed, ~0.2 s per stage."""
    texts = [
        " ".join(f"{WORDS[(seed + p + i) % len(WORDS)]} {seed}.{p}.{i}." for i in range(120)) for p in range(pages)
    ]
    return sample_pdf(texts, title=f"fault resume {seed}")


@dataclass
class FaultStack:
    workdir: Path
    log_dir: Path
    database_url: str  # the real server (tests read rows here)
    redis_proc: ManagedProcess | None = None
    redis_url: str = ""
    db_proxy: TcpProxy | None = None
    services: dict[str, RunningService] = field(default_factory=dict)
    workers: dict[str, ManagedProcess] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    app: Celery | None = None
    beat: ManagedProcess | None = None
    _generation: int = 0

    def start(self) -> FaultStack:
        self.redis_proc, self.redis_url = start_redis(
            self.workdir / "redis", persistent=True, log_path=self.log_dir / "fault-redis.log"
        )
        upgrade(self.database_url)
        url = urlsplit(self.database_url)
        database_url = self.database_url
        if url.port:  # TCP: every PostgreSQL connection of the workers goes through a proxy we can close
            self.db_proxy = TcpProxy(url.hostname, url.port).open()
            database_url = self.database_url.replace(f":{url.port}/", f":{self.db_proxy.port}/")
        for kind in ("parser", "embedder"):
            self.services[kind] = start_service(kind, self.log_dir)
        self.env = orchestrator_env(
            self.redis_url,
            database_url,
            self.workdir / "blobs",
            {
                "parser": self.services["parser"].address,
                "embedder": self.services["embedder"].address,
                "llm": CLOSED,
                "stt": CLOSED,
            },
            max_retries=15,
            retry_backoff_seconds=0.5,
            retry_backoff_max_seconds=2,
            task_time_limit=12,
            task_soft_time_limit=10,
            visibility_timeout=VISIBILITY_TIMEOUT,
            redelivery_sweep_seconds=1,
            tracking_spool_dir=self.workdir / "spool",
            worker_send_events="false",
            lost_task_after_seconds=LOST_AFTER_SECONDS,
            lost_task_check_seconds=2,
            cleanup_interval_seconds=3600,
        )
        self.app = make_app(self.env)
        for kind in ("cpu", "gpu"):
            self.start_worker(kind)
        self.beat = ManagedProcess(
            "fault-beat",
            [str(BIN / "aiworker-beat"), "--schedule", str(self.workdir / "beat-schedule")],
            self.log_dir / "fault-beat.log",
            env=self.env,
        ).start()
        return self

    def stop(self) -> None:
        gc.collect()  # AsyncResults unsubscribe when collected: while Redis is still there to answer
        for proc in (self.beat, *self.workers.values(), *self.services.values(), self.redis_proc):
            if proc is not None:
                proc.stop()
        if self.db_proxy is not None:
            self.db_proxy.close()

    # -- workers -------------------------------------------------------------------
    def start_worker(self, kind: str) -> ManagedProcess:
        """A worker for `kind`'s queue under a new hostname (a restarted worker is a new node)."""
        self._generation += 1
        self.workers[kind] = start_worker(
            self.app, f"{kind}_queue", self.env, self.log_dir, f"fault-{kind}{self._generation}"
        )
        return self.workers[kind]

    def hostname(self, kind: str) -> str:
        return self.workers[kind].hostname  # type: ignore[attr-defined]

    def active_tasks(self, kind: str) -> list[dict[str, Any]]:
        """What the worker runs now ([] while it cannot be asked: kombu's pooled broker
        connections are process-wide, and the first use of one that outlived a Redis
        restart fails once)."""
        try:
            replies = self.app.control.inspect(destination=[self.hostname(kind)], timeout=1, limit=1).active()
        except (redis.ConnectionError, kombu.exceptions.OperationalError):
            return []
        return (replies or {}).get(self.hostname(kind), [])

    def kill_worker(self, kind: str) -> None:
        """SIGKILL the worker's main process and its pool: nothing gets to ack or clean up."""
        proc = self.workers[kind]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.proc.wait(timeout=10)

    def restart_redis(self) -> None:
        """Starts the killed redis-server again: same port, same append-only file."""
        self.redis_proc.start()

    # -- redis ---------------------------------------------------------------------
    @property
    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url, socket_timeout=5)

    def unacked_of(self, pipelines: list[SubmittedPipeline], queue: str | None = None) -> list[str]:
        """Ids of these pipelines' tasks whose messages are still unacknowledged (beat's
        own periodic tasks, also acked late, pass through `unacked` every few seconds),
        of one queue when given."""
        ids = {t for p in pipelines for t in p.task_ids}
        held = (_unacked(r) for r in self.redis.hvals(keys.UNACKED))
        return [tid for tid, routing_key in held if tid in ids and queue in (None, routing_key)]

    def wait_none_unacked(self, pipelines: list[SubmittedPipeline], timeout: float = 10) -> None:
        """A last stage's result is stored by the pool process before the main process
        acknowledges its message: give the ack that moment."""
        try:
            wait_for(lambda: not self.unacked_of(pipelines), timeout, "every stage acknowledged", interval=0.1)
        except TimeoutError:
            raise AssertionError(f"still unacknowledged: {self.unacked_of(pipelines)}") from None

    # -- pipelines -----------------------------------------------------------------
    def submit_resumes(self, count: int, seed: int = 0) -> list[SubmittedPipeline]:
        self.app.set_current()
        return [
            submit(
                self.app,
                "resume",
                {"pdf": self.app.aiworker.blobs.put(resume_pdf(seed + i)), "filename": f"fault-{seed + i}.pdf"},
            )
            for i in range(count)
        ]

    def final_states(self, pipelines: list[SubmittedPipeline]) -> list[str]:
        return [self.app.AsyncResult(p.task_ids[-1]).state for p in pipelines]

    def wait_all_succeeded(self, pipelines: list[SubmittedPipeline], timeout: float) -> None:
        def done() -> bool:
            states = self.final_states(pipelines)
            if "FAILURE" in states or "REVOKED" in states:
                raise AssertionError(f"a pipeline failed: {states}")
            return all(s == "SUCCESS" for s in states)

        try:
            wait_for(done, timeout, f"{len(pipelines)} pipelines succeeded", interval=0.5)
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}; states {self.final_states(pipelines)}") from None

    @property
    def queries(self) -> TrackingQueries:
        settings = self.app.aiworker.settings.model_copy(update={"tracking_database_url": self.database_url})
        return registry_queries(settings)

    def assert_tracked_once_and_succeeded(self, pipelines: list[SubmittedPipeline], timeout: float = 60) -> None:
        """Every stage of every pipeline: exactly one row, SUCCESS, in its pipeline and place;
        each pipeline's overall state SUCCESS; the outbox empty and nothing dead-lettered."""
        ids = {
            t: (p.pipeline_id, i, p.task_ids[0], p.task_ids[i - 1] if i else None)
            for p in pipelines
            for i, t in enumerate(p.task_ids)
        }

        def rows_final() -> list[dict[str, Any]] | None:
            rows = task_rows(self.database_url, "task_id = ANY(:ids)", ids=list(ids))
            return rows if len(rows) == len(ids) and all(r["status"] == "SUCCESS" for r in rows) else None

        try:
            rows = wait_for(rows_final, timeout, "every stage recorded SUCCESS", interval=0.5)
        except TimeoutError:
            rows = task_rows(self.database_url, "task_id = ANY(:ids)", ids=list(ids))
            bad = [(r["task_name"], r["status"], r["error_message"]) for r in rows if r["status"] != "SUCCESS"]
            raise AssertionError(f"{len(rows)} rows of {len(ids)} stages; not SUCCESS: {bad}") from None
        for row in rows:  # in its pipeline, at its place, linked to its root and parent
            got = (row["pipeline_id"], row["stage_index"], row["root_task_id"], row["parent_task_id"])
            assert got == ids[row["task_id"]], (row["task_name"], got, ids[row["task_id"]])
            assert row["created_at"] <= row["started_at"] <= row["completed_at"]
        per_pipeline = task_rows(self.database_url, "pipeline_id = ANY(:p)", p=[p.pipeline_id for p in pipelines])
        assert len(per_pipeline) == len(ids), "a pipeline has rows of tasks it never submitted"
        queries = self.queries
        for p in pipelines:
            assert queries.pipeline_status(p.pipeline_id).overall_state == "SUCCESS"
        client, outbox = self.redis, self.app.aiworker.settings.tracking_outbox
        wait_for(lambda: client.xlen(outbox) == 0, 30, "outbox drained")
        assert client.xlen(f"{outbox}:dead") == 0


def _unacked(raw: bytes) -> tuple[str | None, str | None]:
    """The task id and routing key (its queue) in one value of kombu's `unacked` hash
    ([message, exchange, routing key])."""
    try:
        message, _exchange, routing_key = json.loads(raw)
        return message["headers"]["id"], routing_key
    except (ValueError, LookupError, TypeError):
        return None, None
