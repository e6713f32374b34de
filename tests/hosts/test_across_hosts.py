"""The system on four hosts (network namespaces on one bridge), as it would run
on four machines, with only Redis, PostgreSQL, S3 and gRPC crossing hosts:

    A  Redis, PostgreSQL (on an address of its own), S3 (SeaweedFS), gateway, beat
    B  svc-parser, the cpu worker
    C  svc-embedder, a gpu worker
    D  svc-embedder (a second replica), a gpu worker

Both gpu workers balance over both embedders. A batch of resume and document
pipelines runs; C's link is cut in the middle (silence, not a reset): every
pipeline completes on D, every stage is recorded SUCCESS once and every
document stored once. Then A's PostgreSQL is cut for a while with pipelines
running: they finish once it is back, and their records land. Last, B is cut
while it holds a row lock inside a transaction: the server ends that session,
and another writer gets the row."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import redis
from sqlalchemy import text

from aiworker_local.infra import redis_executable, start_s3
from aiworker_local.postgres import start_postgres
from aiworker_local.procs import ManagedProcess
from orchestrator.settings import OrchestratorSettings
from orchestrator.storage.blobs import blob_store_for
from orchestrator.storage.db import engine_for, upgrade
from orchestrator.storage.db.engine import CONNECT_ARGS, IDLE_IN_TRANSACTION_MS
from svc_parser.model import sample_pdf
from tests.hosts.network import Network, netns_available
from tests.support.keys import API_KEY
from tests.tracking.rows import wait_for

BIN = Path(sys.executable).parent
PY = sys.executable
unavailable = netns_available()
pytestmark = [
    pytest.mark.skipif(unavailable is not None, reason=f"no test hosts: {unavailable}"),
    # pytest-timeout counts the module's fixture in the first test's time: starting the four
    # hosts (two embedders loading on shared cores) can take minutes on a slow machine.
    pytest.mark.timeout(900),
]

GATEWAY_PORT, REDIS_PORT, PG_PORT, PARSER_PORT, EMBEDDER_PORT = 8000, 6379, 5432, 50051, 50052
WORDS = "queue worker broker retry vector chunk embedding tracking replica bridge silence".split()
STOP_SECONDS = 3  # teardown: each process gets this long after SIGTERM


def resume_pdf(seed: int) -> bytes:
    pages = [" ".join(f"{WORDS[(seed + p + i) % len(WORDS)]} {seed}.{p}.{i}." for i in range(150)) for p in range(3)]
    return sample_pdf(pages, title=f"hosts resume {seed}")


class Hosts:
    """The four hosts and what runs on them."""

    def __init__(self, workdir: Path, log_dir: Path) -> None:
        self.workdir = workdir
        self.log_dir = log_dir
        self.net = Network()
        self.procs: dict[str, ManagedProcess] = {}
        self.env: dict[str, str] = {}

    # -- build --------------------------------------------------------------------------
    def start(self) -> Hosts:
        net = self.net.create()
        for host in "abcd":
            net.add_host(host)
        self.pg_address = net.add_address("a")  # PostgreSQL behind a link of its own
        a, b, c, d = (net.address(h) for h in "abcd")
        self._spawn(
            "redis",
            "a",
            redis_executable(),
            "--port",
            str(REDIS_PORT),
            "--bind",
            a,
            "--save",
            "",
            "--appendonly",
            "no",
            "--protected-mode",
            "no",
        )
        self._start_postgres()
        s3 = start_s3(
            self.workdir / "s3",
            host=a,
            log_path=self.log_dir / "hosts-s3.log",
            wrap=net.argv("a"),
            answers=lambda url: self._answers("a", url),
        )
        self.procs["s3"] = s3.process
        self.env = {
            "AIWORKER_BROKER_URL": f"redis://{a}:{REDIS_PORT}/0",
            "AIWORKER_DATABASE_URL": f"postgresql+psycopg://postgres@{self.pg_address}:{PG_PORT}/aiworker",
            "AIWORKER_BLOB_URL": "s3://aiworker/blobs",
            "AIWORKER_S3_ENDPOINT_URL": s3.endpoint_url,
            "AWS_ACCESS_KEY_ID": "hosts",
            "AWS_SECRET_ACCESS_KEY": "hosts",
            "AWS_REGION": "us-east-1",
            "AIWORKER_PARSER_ADDRESS": f"{b}:{PARSER_PORT}",
            "AIWORKER_EMBEDDER_ADDRESS": f"{c}:{EMBEDDER_PORT},{d}:{EMBEDDER_PORT}",
            "AIWORKER_LLM_ADDRESS": f"{a}:1",  # not used here
            "AIWORKER_STT_ADDRESS": f"{a}:1",
            "AIWORKER_LOG_FORMAT": "json",
            "AIWORKER_TRACKING_SPOOL_DIR": str(self.workdir / "spool"),
            "AIWORKER_MAX_RETRIES": "20",
            "AIWORKER_RETRY_BACKOFF_SECONDS": "0.5",
            "AIWORKER_RETRY_BACKOFF_MAX_SECONDS": "3",
            "AIWORKER_LOST_TASK_AFTER_SECONDS": "10",
            "AIWORKER_LOST_TASK_CHECK_SECONDS": "3",
            "AIWORKER_GRPC_KEEPALIVE_SECONDS": "5",
            "AIWORKER_GRPC_KEEPALIVE_TIMEOUT_SECONDS": "2",
            "AIWORKER_WORKER_SEND_EVENTS": "false",
        }
        settings = OrchestratorSettings(
            **{k.removeprefix("AIWORKER_").lower(): v for k, v in self.env.items() if k.startswith("AIWORKER_")},
            s3_access_key_id="hosts",
            s3_secret_access_key="hosts",
            s3_region="us-east-1",
        )
        self.settings = settings
        self.on("a", lambda: upgrade(settings.database_url))
        self.on("a", lambda: blob_store_for(settings).backend.ensure_bucket())
        service_flags = ("--metrics-port", "-1", "--log-format", "json", "--device", "cpu")
        self._spawn("parser", "b", PY, "-m", "svc_parser", "--host", b, "--port", str(PARSER_PORT), *service_flags)
        for host, address in (("c", c), ("d", d)):
            self._spawn(
                f"embedder-{host}",
                host,
                PY,
                "-m",
                "svc_embedder",
                "--host",
                address,
                "--port",
                str(EMBEDDER_PORT),
                "--torch-threads",
                "1",
                *service_flags,
            )
        for name, host, address, port, service in (
            ("parser", "b", b, PARSER_PORT, "aiworker.parser.v1.Parser"),
            ("embedder-c", "c", c, EMBEDDER_PORT, "aiworker.embedder.v1.Embedder"),
            ("embedder-d", "d", d, EMBEDDER_PORT, "aiworker.embedder.v1.Embedder"),
        ):
            self.procs[name].wait_until(
                lambda h=host, t=f"{address}:{port}", s=service: self._serving(h, t, s), 240, "model SERVING"
            )
        for name, host, queue in (
            ("worker-b", "b", "cpu_queue"),
            ("worker-c", "c", "gpu_queue"),
            ("worker-d", "d", "gpu_queue"),
        ):
            self._spawn(name, host, str(BIN / "aiworker-worker"), "--queues", queue, "--hostname", f"{name}@{host}")
        self._spawn("beat", "a", str(BIN / "aiworker-beat"), "--schedule", str(self.workdir / "beat-schedule"))
        self._spawn(
            "gateway",
            "a",
            str(BIN / "aiworker-gateway"),
            "--host",
            a,
            "--port",
            str(GATEWAY_PORT),
            "--grpc-port",
            "0",
            env={
                "AIWORKER_GATEWAY_API_KEYS": API_KEY,
                "AIWORKER_GATEWAY_REQUIRED_SERVICES": "parser,embedder",
                "AIWORKER_GATEWAY_LOG_FORMAT": "json",
            },
        )
        self.procs["gateway"].wait_until(lambda: self.get("/readyz").status_code == 200, 120, "/readyz 200")
        return self

    def _spawn(self, name: str, host: str, *command: str, env: dict[str, str] | None = None) -> None:
        log = self.log_dir / f"hosts-{name}.log"
        self.procs[name] = ManagedProcess(name, self.net.argv(host, *command), log, env={**self.env, **(env or {})})
        self.procs[name].start()

    def _start_postgres(self) -> None:
        trusted = f"10.{self.net.subnet}.0.0/24"
        self.postgres = start_postgres(
            self.pg_address,
            PG_PORT,
            self.log_dir / "hosts-postgres.log",
            trusted=trusted,
            wrap=self.net.argv("a"),
        )
        self.procs["postgres"] = self.postgres.process
        self.postgres.process.wait_until(lambda: self.on("a", self._pg_answers), 60, "PostgreSQL answering")

    def _pg_answers(self) -> bool:
        import psycopg

        with psycopg.connect(
            f"host={self.pg_address} port={PG_PORT} user=postgres dbname=aiworker", connect_timeout=2
        ) as conn:
            return conn.execute("SELECT 1").fetchone() == (1,)

    def _serving(self, host: str, target: str, service: str) -> bool:
        # In a process of its own inside the host: gRPC connects from its own threads, which
        # stay in the namespace where this process first used gRPC (not the calling thread's).
        probe = (
            "import sys, grpc\n"
            "from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as g\n"
            "with grpc.insecure_channel(sys.argv[1]) as c:\n"
            "    r = g.HealthStub(c).Check(h.HealthCheckRequest(service=sys.argv[2]), timeout=2)\n"
            "sys.exit(0 if r.status == h.HealthCheckResponse.SERVING else 1)\n"
        )
        argv = self.net.argv(host, sys.executable, "-c", probe, target, service)
        return subprocess.run(argv, capture_output=True, timeout=30).returncode == 0

    def _answers(self, host: str, url: str) -> bool:
        return self.on(host, lambda: httpx.get(url, timeout=2).status_code > 0)

    # -- use ----------------------------------------------------------------------------
    def on(self, host: str, fn, timeout: float = 120):
        return self.net.call(host, fn, timeout)

    def get(self, path: str, **kwargs) -> httpx.Response:
        url = f"http://{self.net.address('a')}:{GATEWAY_PORT}{path}"
        return self.on("a", lambda: httpx.get(url, headers={"X-API-Key": API_KEY}, timeout=30, **kwargs))

    def post(self, path: str, **kwargs) -> httpx.Response:
        url = f"http://{self.net.address('a')}:{GATEWAY_PORT}{path}"
        return self.on("a", lambda: httpx.post(url, headers={"X-API-Key": API_KEY}, timeout=60, **kwargs))

    def sql(self, query: str, **params) -> list[dict]:
        def run() -> list[dict]:
            with engine_for(self.settings.database_url).connect() as conn:
                return [dict(r) for r in conn.execute(text(query), params).mappings()]

        return self.on("a", run)

    def submit_batch(self, seed: int, resumes: int, documents: int) -> list[str]:
        ids = []
        for i in range(resumes):
            files = {"file": (f"cv-{seed + i}.pdf", resume_pdf(seed + i), "application/pdf")}
            response = self.post("/api/v1/pipelines/resume", files=files)
            assert response.status_code == 202, response.text
            ids.append(response.json()["data"]["pipeline_id"])
        for i in range(documents):
            body = " ".join(f"{WORDS[(seed + i + j) % len(WORDS)]} line {j}." for j in range(400)).encode()
            response = self.post("/api/v1/pipelines/document", files={"file": (f"notes-{i}.txt", body, "text/plain")})
            assert response.status_code == 202, response.text
            ids.append(response.json()["data"]["pipeline_id"])
        return ids

    def states(self, pipeline_ids: list[str]) -> dict[str, str]:
        rows = self.sql(
            "SELECT pipeline_id, overall_state FROM pipeline_info WHERE pipeline_id = ANY(:ids)", ids=pipeline_ids
        )
        return {r["pipeline_id"]: r["overall_state"] for r in rows}

    def wait_all_succeeded(self, pipeline_ids: list[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = self.states(pipeline_ids)
            assert "FAILURE" not in states.values(), states
            if len(states) == len(pipeline_ids) and set(states.values()) == {"SUCCESS"}:
                return
            time.sleep(2)
        raise TimeoutError(f"not all succeeded after {timeout}s: {self.states(pipeline_ids)}")

    def stop(self) -> None:
        # The components at once, then what they use. The tests are over: whatever has not
        # stopped in STOP_SECONDS is killed (the worker of a host cut earlier, SeaweedFS).
        infra = ("redis", "postgres", "s3")
        for wave in (
            [p for n, p in self.procs.items() if n not in infra],
            [self.procs[n] for n in infra if n in self.procs],
        ):
            with ThreadPoolExecutor(max_workers=max(len(wave), 1)) as pool:
                list(pool.map(lambda proc: proc.stop(timeout=STOP_SECONDS), wave))
        if getattr(self, "postgres", None) is not None:
            self.postgres.stop()  # and its data folder
        self.net.delete()


@pytest.fixture(scope="module")
def hosts(tmp_path_factory, log_dir) -> Iterator[Hosts]:
    running = Hosts(tmp_path_factory.mktemp("hosts"), log_dir)
    try:
        yield running.start()
    finally:
        running.stop()
    assert subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.count(running.net.prefix) == 0


def test_a_cut_gpu_host_loses_nothing_and_runs_nothing_twice(hosts: Hosts):
    pipelines = hosts.submit_batch(1000, resumes=6, documents=4)
    # Cut C while its worker is embedding (its stages STARTED there).
    deadline = time.monotonic() + 120
    while not hosts.sql("SELECT 1 FROM task_info WHERE worker LIKE 'worker-c@%' AND status = 'STARTED'"):
        assert time.monotonic() < deadline, "C never started a stage"
        time.sleep(0.5)
    hosts.net.cut(hosts.net.address("c"))
    cut_at = time.time()
    hosts.wait_all_succeeded(pipelines, 300)

    rows = hosts.sql(
        "SELECT pipeline_id, stage_index, status, worker, task_name, completed_at FROM task_info "
        "WHERE pipeline_id = ANY(:ids) ORDER BY pipeline_id, stage_index",
        ids=pipelines,
    )
    by_pipeline: dict[str, list[dict]] = {}
    for row in rows:
        by_pipeline.setdefault(row["pipeline_id"], []).append(row)
    for pipeline_id, stages in by_pipeline.items():  # one row per stage, each SUCCESS: nothing twice
        assert [s["stage_index"] for s in stages] == list(range(len(stages))), pipeline_id
        assert all(s["status"] == "SUCCESS" for s in stages), stages
    embeds = [r for r in rows if r["task_name"].endswith(("generate_embeddings", ".embed"))]
    after_cut = [r for r in embeds if r["completed_at"].timestamp() > cut_at + 1]
    assert after_cut and all(r["worker"].startswith("worker-d@") for r in after_cut), after_cut
    documents = hosts.sql(
        "SELECT d.id, count(c.id) AS chunks FROM documents d LEFT JOIN chunks c ON c.document_id = d.id "
        "WHERE d.id = ANY(:ids) GROUP BY d.id",
        ids=pipelines,
    )
    assert len(documents) == len(pipelines) and all(d["chunks"] > 0 for d in documents)
    chunk_rows = hosts.sql(
        "SELECT document_id, index, count(*) AS n FROM chunks WHERE document_id = ANY(:ids) "
        "GROUP BY document_id, index HAVING count(*) > 1",
        ids=pipelines,
    )
    assert chunk_rows == []  # no chunk stored twice
    readiness = hosts.get("/readyz").json()["parts"]["embedder"]
    assert readiness["status"] == "DEGRADED" and readiness["ready"], readiness


def test_postgres_cut_for_a_while_then_every_record_lands(hosts: Hosts):
    pipelines = hosts.submit_batch(2000, resumes=2, documents=2)
    time.sleep(2)
    hosts.net.cut(hosts.pg_address)
    try:
        time.sleep(25)  # stages that store, drainers and the gateway's reads meet silence
    finally:
        hosts.net.restore(hosts.pg_address)
    hosts.wait_all_succeeded(pipelines, 240)
    rows = hosts.sql("SELECT status FROM task_info WHERE pipeline_id = ANY(:ids)", ids=pipelines)
    assert len(rows) == 2 * 3 + 2 * 4 and {r["status"] for r in rows} == {"SUCCESS"}
    # The rows are there; the outbox empties once each drainer has acknowledged its entries (one whose
    # PostgreSQL connection went silent in the cut learns so within its TCP timeout, ~25 s).
    settings = hosts.settings

    def outbox_left() -> int:
        return hosts.on("a", lambda: redis.Redis.from_url(settings.broker_url).xlen(settings.tracking_outbox))

    try:
        wait_for(lambda: outbox_left() == 0, 90, "the tracking outbox drained")
    except TimeoutError as exc:
        raise AssertionError(f"{exc}: {outbox_left()} entries left") from None


def test_a_client_cut_inside_a_transaction_does_not_hold_its_locks(hosts: Hosts):
    """B takes a row lock, as a drainer's transaction does, and its link goes silent before
    it commits. The server must end that session (the client asked it to, at connect)
    rather than keep the lock until its own TCP keepalive gives up hours later: every
    other writer of that row would wait as long. Runs last: B stays cut."""
    import psycopg

    (pipeline_id,) = hosts.submit_batch(3000, resumes=0, documents=1)
    hosts.wait_all_succeeded([pipeline_id], 120)
    conninfo = {"host": hosts.pg_address, "port": PG_PORT, "user": "postgres", "dbname": "aiworker"}

    def lock_and_fall_silent() -> psycopg.Connection:
        conn = psycopg.connect(**conninfo, **CONNECT_ARGS)
        conn.execute("SELECT 1 FROM pipeline_info WHERE pipeline_id = %s FOR UPDATE", (pipeline_id,))
        return conn  # the transaction stays open

    held = hosts.on("b", lock_and_fall_silent)
    hosts.net.cut(hosts.net.address("b"))

    def update_the_locked_row() -> int:
        with psycopg.connect(**conninfo, **CONNECT_ARGS) as conn:
            # Long enough for the server to end B's session, far shorter than its keepalive.
            conn.execute(f"SET lock_timeout = '{IDLE_IN_TRANSACTION_MS + 60_000}ms'")
            return conn.execute(
                "UPDATE pipeline_info SET updated_at = now() WHERE pipeline_id = %s", (pipeline_id,)
            ).rowcount

    try:
        assert hosts.on("a", update_the_locked_row, timeout=IDLE_IN_TRANSACTION_MS / 1000 + 90) == 1
    finally:
        held.close()
