import pytest


@pytest.fixture()
def client(gateway):
    with gateway.client() as c:
        yield c
