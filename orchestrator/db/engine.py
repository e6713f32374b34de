from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from typing import Iterator

from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session

_engines: dict[tuple[int, str], Engine] = {}
_lock = threading.Lock()


def engine_for(url: str) -> Engine:
    """One pooled engine per URL per process (pools must not cross a fork)."""
    key = (os.getpid(), url)
    with _lock:
        engine = _engines.get(key)
        if engine is None:
            engine = create_engine(
                url, pool_pre_ping=True, pool_size=5, max_overflow=5,
                connect_args={"connect_timeout": 5},
            )
            _engines[key] = engine
        return engine


@contextmanager
def session_scope(url: str) -> Iterator[Session]:
    with Session(engine_for(url)) as session, session.begin():
        yield session
