"""OpenAI-compatible endpoints on the gateway (/v1/models, /v1/embeddings,
/v1/chat/completions, /v1/audio/transcriptions): the model services called
directly over gRPC, the gateway's API keys, OpenAI's request and error shapes,
so the clients people already use (the openai SDK, LangChain, curl) work
unchanged with `base_url=http://<gateway>/v1`."""

from __future__ import annotations

from fastapi import FastAPI

from gateway.health import HealthAggregator
from gateway.openai.backend import Backend
from gateway.openai.deps import OpenAIState
from gateway.openai.models import ModelCatalog
from gateway.openai.routes import PREFIX, router
from orchestrator.pipelines.resources import Resources

__all__ = ["install"]


def install(app: FastAPI, resources: Resources, health: HealthAggregator) -> None:
    """The /v1 routes on `app`, calling the services through `resources`' clients."""
    backend = Backend(resources)
    app.state.openai = OpenAIState(backend, ModelCatalog(backend, health))
    app.include_router(router)
    _undocument_validation_status(app)


def _undocument_validation_status(app: FastAPI) -> None:
    """FastAPI documents a 422 for every route with a body; the /v1 routes answer a 400
    instead (OpenAI's status for an invalid request), so their 422 is taken out."""
    build = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            for path, operations in build().get("paths", {}).items():
                if path.startswith(PREFIX + "/"):
                    for operation in operations.values():
                        operation.get("responses", {}).pop("422", None)
        return app.openapi_schema

    app.openapi = openapi
