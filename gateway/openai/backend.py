"""The model services as the /v1 routes call them: directly (interactive, no
Celery round trip), through the typed clients of orchestrator.clients, on the
gateway's pooled channels.

The clients are blocking, so calls run on a thread pool of these routes' own:
a generation holds its thread for seconds, and the event loop's default pool
(a handful of threads) also serves the health checks behind /readyz. A stream
is pumped by one pool thread into an asyncio queue; when the HTTP client goes
away the pump closes the client's generator at the next event, which cancels
the RPC (the LLM then drops the sequence)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import Request

from orchestrator.clients import CallContext, ServiceClient
from orchestrator.pipelines.resources import Resources

C = TypeVar("C", bound=ServiceClient)
T = TypeVar("T")

CALL_THREADS = 64  # calls (streams included) in flight at once; more wait for a thread


@dataclass
class _Failed:
    error: BaseException


_END = object()


class Backend:
    def __init__(self, resources: Resources, threads: int = CALL_THREADS) -> None:
        self.resources = resources
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="openai-call")

    def client(self, kind: type[C]) -> C:
        return self.resources.client(kind)

    @staticmethod
    def context(request: Request, timeout: float) -> CallContext:
        """The deadline of one call, and the request id for the service's logs."""
        request_id = getattr(request.state, "request_id", None)
        return CallContext(timeout=timeout, metadata=(("x-request-id", request_id),) if request_id else ())

    async def run(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A blocking client call, off the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, lambda: call(*args, **kwargs))

    async def stream(self, events: Callable[[], Iterator[T]]) -> AsyncIterator[T]:
        """The items of a blocking client stream (`events()` opens it), as they come.
        Closing this iterator (the HTTP client left) stops the stream at its next item."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        stop = threading.Event()

        def put(item: Any) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the loop is closed (shutdown): nobody listens
                pass

        def pump() -> None:
            iterator = events()
            try:
                for item in iterator:
                    if stop.is_set():
                        break
                    put(item)
            except BaseException as exc:  # noqa: BLE001 - handed to the reader, which raises it
                put(_Failed(exc))
            finally:
                close = getattr(iterator, "close", None)
                if close:  # a generator left early: its RPC is cancelled
                    close()
                put(_END)

        loop.run_in_executor(self._pool, pump)
        try:
            while True:
                item = await queue.get()
                if item is _END:
                    return
                if isinstance(item, _Failed):
                    raise item.error
                yield item
        finally:
            stop.set()
