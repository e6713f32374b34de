"""One fault back end for the package (tests/fault/harness.py); every test
leaves it whole again (workers, services, Redis and PostgreSQL up)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fault.harness import FaultStack


@pytest.fixture(scope="package")
def fault(log_dir, postgres_url, tmp_path_factory) -> Iterator[FaultStack]:
    running = FaultStack(tmp_path_factory.mktemp("fault"), log_dir, postgres_url)
    try:
        yield running.start()
    finally:
        running.stop()
