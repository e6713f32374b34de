"""GenerationTurn: one holder, a bounded number of waiters, waiters that give up."""

from __future__ import annotations

import threading
import time

import pytest

from svc_llm.turn import GenerationTurn
from svc_runtime.errors import ResourceExhausted


def test_one_waiter_waits_and_the_next_is_refused():
    turn = GenerationTurn(max_waiting=1)
    assert turn.acquire()
    got = threading.Event()
    waiter = threading.Thread(target=lambda: turn.acquire() and got.set())
    waiter.start()
    deadline = time.monotonic() + 5
    while turn._waiting == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    with pytest.raises(ResourceExhausted, match="limit 1"):
        turn.acquire()
    assert not got.is_set()
    turn.release()
    waiter.join(5)
    assert got.is_set()
    turn.release()
    assert turn.acquire()  # free again


def test_a_waiter_gives_up_when_told_to_stop():
    turn = GenerationTurn(max_waiting=4)
    assert turn.acquire()
    stop = threading.Event()
    outcome: list[bool] = []
    waiter = threading.Thread(target=lambda: outcome.append(turn.acquire(stop.is_set)))
    waiter.start()
    stop.set()
    waiter.join(5)
    assert outcome == [False]
    assert turn._waiting == 0
