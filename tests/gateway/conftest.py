import pytest

from tests.support.gateway import start_gateway

API_KEY = "test-key-0123456789"


@pytest.fixture(scope="session")
def gateway(stack, log_dir):
    running = start_gateway(stack.env, log_dir, API_KEY, wait_ready=True)
    yield running
    running.stop()


@pytest.fixture()
def client(gateway):
    with gateway.client() as c:
        yield c
