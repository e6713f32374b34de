import grpc
import pytest

from aiworker.embedder.v1 import embedder_pb2_grpc
from aiworker_local.services import start_service

# Small limits so the over-limit cases stay cheap to send.
MAX_TEXTS_PER_CALL = 32
MAX_TEXT_CHARS = 5000


@pytest.fixture(scope="session")
def reference_model():
    """The bundled model loaded in-process, as a user of sentence-transformers would."""
    from sentence_transformers import SentenceTransformer

    from svc_embedder.model import bundled_model_path

    return SentenceTransformer(str(bundled_model_path()), device="cpu")


@pytest.fixture(scope="session")
def embedder_service(log_dir):
    service = start_service(
        "embedder",
        log_dir,
        "--device",
        "cpu",
        "--max-texts-per-call",
        str(MAX_TEXTS_PER_CALL),
        "--max-text-chars",
        str(MAX_TEXT_CHARS),
    )
    yield service
    service.stop()


@pytest.fixture(scope="session")
def embedder_stub(embedder_service):
    channel = grpc.insecure_channel(embedder_service.address)
    yield embedder_pb2_grpc.EmbedderStub(channel)
    channel.close()
