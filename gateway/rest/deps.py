"""Dependencies of the REST routes: the API key check and the shared objects."""

from __future__ import annotations

from fastapi import Depends, HTTPException, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from gateway.security import ApiKeyring
from gateway.service import PipelineGateway

# Declared as security schemes so /docs shows the padlock; the check itself is ours.
_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <API key>")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="X-API-Key: <API key>")


def require_api_key(
    request: Request,
    bearer: HTTPAuthorizationCredentials | None = Depends(_bearer),
    x_api_key: str | None = Depends(_header),
) -> str:
    """The caller's key id; 401 when auth is on and no valid key was sent."""
    state = request.app.state
    if not state.gateway_settings.auth_enabled:
        request.state.key_id = "anonymous"
        return "anonymous"
    key_id = _identify(request, bearer, x_api_key)
    if key_id is None:
        raise HTTPException(
            401,
            "missing or invalid API key: send 'Authorization: Bearer <key>' or 'X-API-Key'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    request.state.key_id = key_id
    return key_id


def require_metrics_access(
    request: Request,
    bearer: HTTPAuthorizationCredentials | None = Depends(_bearer),
    x_api_key: str | None = Depends(_header),
) -> str | None:
    """/metrics: open when metrics_public is on (a Prometheus scraper has no key),
    else the same key check as /api. A key sent anyway is still identified."""
    if request.app.state.gateway_settings.metrics_public:
        request.state.key_id = _identify(request, bearer, x_api_key)
        return request.state.key_id
    return require_api_key(request, bearer, x_api_key)


def _identify(request: Request, bearer: HTTPAuthorizationCredentials | None, x_api_key: str | None) -> str | None:
    """The id of the key the caller sent (X-API-Key or a bearer token), None when none is valid."""
    keyring: ApiKeyring = request.app.state.keyring
    return keyring.identify(x_api_key or (bearer.credentials if bearer else None))


def pipelines(request: Request) -> PipelineGateway:
    return request.app.state.pipelines
