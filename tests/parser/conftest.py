import pytest

from aiworker_local.services import start_service


@pytest.fixture(scope="session")
def parser_service(log_dir):
    service = start_service("parser", log_dir, "--max-pdf-bytes", str(2 * 1024 * 1024), "--max-pages", "50")
    yield service
    service.stop()
