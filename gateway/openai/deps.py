"""What the /v1 routes share, built once by `gateway.openai.install`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from gateway.openai.backend import Backend
from gateway.openai.models import ModelCatalog


@dataclass(frozen=True)
class OpenAIState:
    backend: Backend
    models: ModelCatalog


def _state(request: Request) -> OpenAIState:
    return request.app.state.openai


State = Annotated[OpenAIState, Depends(_state)]
