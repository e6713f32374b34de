from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy
from sqlalchemy import Engine
from sqlalchemy.orm import Session

_engines: dict[tuple[int, str], Engine] = {}
# A server gone silent (a cut link) must fail a call in seconds, not after TCP's retransmission
# timeout (~15 min): libpq's keepalives, and a cap on how long sent data may stay unacknowledged.
# Both are ignored on Unix-domain sockets.
#
# The other way round, a client gone silent in the middle of a transaction must not leave its
# session holding row locks on the server until the server's own keepalive (2 h by default):
# every other writer of those rows (the drainers) would wait on them for as long. So each
# session asks the server to end it once it has sat idle inside a transaction for
# IDLE_IN_TRANSACTION_MS (no transaction of ours waits on anything between its statements),
# and to probe and time out its socket as the client does.
IDLE_IN_TRANSACTION_MS = 20_000
SERVER_SIDE_OPTIONS = (
    f"-c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_MS} "
    "-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3 "
    "-c tcp_user_timeout=20000"
)
CONNECT_ARGS = {
    "connect_timeout": 5,
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    "tcp_user_timeout": 20_000,
    "options": SERVER_SIDE_OPTIONS,
}
_lock = threading.Lock()


def engine_for(url: str) -> Engine:
    """One pooled engine per URL per process (pools must not cross a fork)."""
    key = (os.getpid(), url)
    with _lock:
        engine = _engines.get(key)
        if engine is None:
            engine = sqlalchemy.create_engine(  # looked up now: tracing may have instrumented it
                url,
                pool_pre_ping=True,
                pool_size=5,
                max_overflow=5,
                connect_args=CONNECT_ARGS,
            )
            _engines[key] = engine
        return engine


@contextmanager
def session_scope(url: str) -> Iterator[Session]:
    with Session(engine_for(url)) as session, session.begin():
        yield session
