"""Which model each service serves, for GET /v1/models and the `model` check
of every request.

Devices come from the gateway's health checks (HealthAggregator: each reply's
`x-aiworker-device`). The name of each service's latest reply is kept (trusted
for NAME_TRUST_SECONDS, then asked again); when none is fresh, the LLM is asked
its ModelStatus, and a probe asks the others (they only name their model in
their replies): one short text to the embedder, a fraction of a second of
silence to the STT."""

from __future__ import annotations

import asyncio
import io
import time
import wave
from dataclasses import dataclass

from aiworker.llm.v1 import llm_pb2
from gateway.health import HealthAggregator
from gateway.openai.backend import Backend
from gateway.openai.errors import model_not_found
from orchestrator.clients import CallContext, EmbedderClient, LlmClient, SttClient

SERVICES = ("embedder", "llm", "stt")  # the catalogue services /v1 serves
NAME_TRUST_SECONDS = 60.0  # a service could be restarted with another model: names are asked again after this
PROBE_TIMEOUT_SECONDS = 10.0


def _silence(seconds: float = 0.25, rate: int = 16000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\0\0" * int(seconds * rate))
    return buffer.getvalue()


SILENCE = _silence()


@dataclass(frozen=True)
class ServedModel:
    id: str
    service: str
    device: str | None
    created: int
    state: str


class ModelCatalog:
    def __init__(self, backend: Backend, health: HealthAggregator) -> None:
        self.backend = backend
        self.health = health
        self._names: dict[str, tuple[str, float]] = {}  # service → (name, when seen)
        self._first_seen: dict[tuple[str, str], int] = {}

    # -- names as replies report them --------------------------------------------

    def seen(self, service: str, name: str) -> None:
        """A reply of `service` named its model."""
        self._names[service] = (name, time.monotonic())
        self._first_seen.setdefault((service, name), int(time.time()))

    def trusted_name(self, service: str) -> str | None:
        known = self._names.get(service)
        return known[0] if known and time.monotonic() - known[1] < NAME_TRUST_SECONDS else None

    def expect(self, service: str, requested: str) -> None:
        """Before a call: 404 when the service is known to serve another model."""
        served = self.trusted_name(service)
        if served is not None and served != requested:
            raise model_not_found(requested, served)

    def confirm(self, service: str, requested: str, served: str) -> None:
        """After a call: its reply named the model that served it."""
        self.seen(service, served)
        if served != requested:
            raise model_not_found(requested, served)

    async def llm(self, requested: str, ctx: CallContext) -> str:
        """The LLM's name before a chat request (404 when it is not `requested`): the trusted one,
        else asked (a reply could only say it after the tokens were streamed)."""
        name = self.trusted_name("llm")
        if name is None:
            name = (await self.backend.run(self.backend.client(LlmClient).model_status, ctx)).model
            self.seen("llm", name)
        if name != requested:
            raise model_not_found(requested, name)
        return name

    # -- the list -------------------------------------------------------------------

    async def served(self) -> list[ServedModel]:
        """The models of every service that is up, with device; a service that is down is left out."""
        found = await asyncio.gather(*(self._served_by(service) for service in SERVICES))
        return [model for model in found if model is not None]

    async def _served_by(self, service: str) -> ServedModel | None:
        part = await self.health.check_service(service)
        if not part.ready:
            return None
        try:
            name, state = await self._ask(service)
        except Exception:  # noqa: BLE001 - a service that cannot answer is not listed
            return None
        created = self._first_seen.get((service, name), int(time.time()))
        return ServedModel(name, service, part.device, created, state)

    async def _ask(self, service: str) -> tuple[str, str]:
        ctx = CallContext(timeout=PROBE_TIMEOUT_SECONDS)
        if service == "llm":
            status = await self.backend.run(self.backend.client(LlmClient).model_status, ctx)
            self.seen(service, status.model)
            return status.model, llm_pb2.ModelState.Name(status.state).removeprefix("MODEL_STATE_").lower()
        name = self.trusted_name(service)
        if name is None:
            if service == "embedder":
                reply = await self.backend.run(self.backend.client(EmbedderClient).embed, ["model probe"], ctx)
            else:
                reply = await self.backend.run(self.backend.client(SttClient).recognize, SILENCE, ctx)
            self.seen(service, reply.model)
            name = reply.model
        return name, "loaded"  # health SERVING: loaded and warm
