"""Which publish errors a worker retries (orchestrator/broker/publishing.py): broker
trouble, including kombu tripping over its own closed channel; nothing else."""

from __future__ import annotations

from types import SimpleNamespace

import kombu.exceptions
import pytest
import redis
from kombu.transport.redis import Channel

from orchestrator.broker.publishing import is_broker_trouble


def raised(fn) -> BaseException:
    with pytest.raises(BaseException) as caught:
        fn()
    return caught.value


def test_broker_errors_are_trouble():
    assert is_broker_trouble(kombu.exceptions.OperationalError("Error 111 connecting"))
    assert is_broker_trouble(redis.ConnectionError("Connection closed by server."))
    assert is_broker_trouble(ConnectionRefusedError())


def test_kombus_closed_channel_attribute_error_is_trouble():
    closed = SimpleNamespace(connection=SimpleNamespace(client=None))  # what a closed channel looks like
    exc = raised(lambda: Channel._connparams(closed))
    assert isinstance(exc, AttributeError) and is_broker_trouble(exc)


def test_other_errors_are_not():
    assert not is_broker_trouble(ValueError("bad payload"))
    assert not is_broker_trouble(kombu.exceptions.EncodeError("not JSON"))
    ours = raised(lambda: None.client)  # an AttributeError of our own code: a bug, not the broker
    assert isinstance(ours, AttributeError) and not is_broker_trouble(ours)
