from __future__ import annotations

from dataclasses import dataclass

import grpc
import pytest

from aiworker.llm.v1 import llm_pb2, llm_pb2_grpc
from aiworker_local.services import RunningService, start_service
from tests.llm.support import MAX_BATCH_SEQUENCES, MAX_BATCH_TOKENS, MAX_NEW_TOKENS_LIMIT, MAX_QUEUED_REQUESTS


@dataclass
class EagerStart:
    service: RunningService
    first_health: int  # the first answer of the health check, while the model loads
    first_state: int  # ModelStatus at that moment


@pytest.fixture(scope="session")
def llm_eager_start(log_dir):
    """The service in eager mode, with what it said while its model was loading."""
    service = start_service(
        "llm",
        log_dir,
        "--device",
        "cpu",
        "--max-queued-requests",
        str(MAX_QUEUED_REQUESTS),
        "--max-batch-sequences",
        str(MAX_BATCH_SEQUENCES),
        "--max-batch-tokens",
        str(MAX_BATCH_TOKENS),
        "--max-new-tokens-limit",
        str(MAX_NEW_TOKENS_LIMIT),
        wait=False,
    )
    try:
        observed: dict[str, int] = {}

        def answers() -> bool:
            observed["health"] = service.status()
            with grpc.insecure_channel(service.address) as channel:
                reply = llm_pb2_grpc.LlmStub(channel).ModelStatus(llm_pb2.ModelStatusRequest(), timeout=5)
            observed["state"] = reply.state
            return True

        service.process.wait_until(answers, 120, "a first health answer")
        service.wait_serving()
    except Exception:
        service.stop()
        raise
    yield EagerStart(service, observed["health"], observed["state"])
    service.stop()


@pytest.fixture(scope="session")
def llm_service(llm_eager_start) -> RunningService:
    return llm_eager_start.service


@pytest.fixture(scope="session")
def llm_stub(llm_service):
    channel = grpc.insecure_channel(llm_service.address)
    yield llm_pb2_grpc.LlmStub(channel)
    channel.close()
