"""OpenAI's error shape for the /v1 routes, scoped to their router:
{"error": {"message", "type", "param", "code"}}. The gateway's own routes keep
their {"success": false, ...} envelope: nothing here is installed on the app.

`OpenAIRoute` (the /v1 router's route class) turns every error of a request,
from the key check and body validation to a model service's gRPC status, into
that shape. gRPC codes become HTTP statuses through the gateway's one table
(gateway.rest.errors.http_status_of); this module only adds OpenAI's `type` and
`code` to a status."""

from __future__ import annotations

import re
from collections.abc import Callable, Coroutine
from typing import Any

import grpc
from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway.rest.errors import http_status_of
from orchestrator.errors import RetryableServiceError, ServiceCallError
from svc_runtime.errors import ServiceError
from svc_runtime.interceptor import grpc_code
from svc_runtime.logs import get_logger

log = get_logger(__name__)

RETRY_AFTER_SECONDS = 1  # a model service answered RESOURCE_EXHAUSTED: its queue drains in about this long

# OpenAI's `type` and default `code` per HTTP status.
_TYPES = {429: "rate_limit_error"}
_CODES = {
    401: "invalid_api_key",
    404: "not_found",
    413: "file_too_large",
    429: "overloaded",
    499: "cancelled",
    501: "not_implemented",
    503: "service_unavailable",
    504: "timeout",
}


class OpenAIError(Exception):
    """An error a /v1 route answers with, in OpenAI's shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code or _CODES.get(status)
        self.headers = headers or {}
        if status == 429:
            self.headers.setdefault("Retry-After", str(RETRY_AFTER_SECONDS))

    @property
    def type(self) -> str:
        return _TYPES.get(self.status) or ("server_error" if self.status >= 500 else "invalid_request_error")

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def model_not_found(requested: str, served: str | None) -> OpenAIError:
    served_text = f"this server serves {served!r} there" if served else "see GET /v1/models"
    return OpenAIError(
        404,
        f"The model {requested!r} does not exist or you do not have access to it ({served_text}).",
        param="model",
        code="model_not_found",
    )


def unsupported(field: str, why: str) -> OpenAIError:
    message = f"{field!r} is not supported by this server: {why}"
    return OpenAIError(400, message, param=field, code="unsupported_parameter")


def openai_error_of(exc: Exception, request: Request) -> OpenAIError:
    """Any error a /v1 request ends in, as an OpenAIError."""
    if isinstance(exc, OpenAIError):
        return exc
    if isinstance(exc, RequestValidationError):
        return _invalid_request(exc)
    if isinstance(exc, StarletteHTTPException):
        return OpenAIError(exc.status_code, str(exc.detail), headers=dict(exc.headers or {}))
    if isinstance(exc, ServiceError):  # the gateway's own checks (an upload's size and type)
        status = getattr(exc, "http_status", None) or http_status_of(grpc_code(exc))
        return OpenAIError(400 if status == 422 else status, exc.message)
    if isinstance(exc, RetryableServiceError | ServiceCallError):  # a model service's status (orchestrator.clients)
        return OpenAIError(http_status_of(getattr(exc, "code", grpc.StatusCode.UNKNOWN)), str(exc))
    request_id = getattr(request.state, "request_id", "")
    log.error("openai_request_failed", path=request.url.path, exc_info=exc)
    return OpenAIError(500, f"internal error (request id {request_id}); see the gateway log", code="internal_error")


def _invalid_request(exc: RequestValidationError) -> OpenAIError:
    problems = []
    first_param = None
    for error in exc.errors():
        loc = [part for part in error["loc"] if part not in ("body", "form")]
        param = _param_path(loc)
        if error["type"] == "extra_forbidden":
            problems.append(f"Unrecognized request argument supplied: {param}")
        elif error["type"] == "json_invalid":
            param = None
            problems.append("We could not parse the JSON body of your request: send valid JSON")
        elif error["type"] == "missing" and param is not None:
            problems.append(f"Missing required parameter: {param!r}")
        elif param is None:
            problems.append(f"the request body: {error['msg']}")
        else:
            problems.append(f"Invalid value for {param!r}: {error['msg']}")
        first_param = first_param or param
    return OpenAIError(400, "; ".join(problems) or "invalid request", param=first_param)


def _param_path(loc: list[Any]) -> str | None:
    """("messages", 0, "content") → "messages[0].content", as OpenAI names params."""
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif isinstance(part, str) and not _is_type_tag(part):
            path += f".{part}" if path else part
    return path or None


_TYPE_TAG = re.compile(r"^[a-z-]+\[.+\]$|^(str|int|float|bool|dict|list|none)$")


def _is_type_tag(part: str) -> bool:
    """pydantic names the member of a union a value failed as part of its location ("list[str]")."""
    return bool(_TYPE_TAG.match(part))


class OpenAIRoute(APIRoute):
    """Every error of a /v1 request, whatever raised it, answered in OpenAI's shape."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:  # noqa: BLE001 - each one is answered in the error shape
                return openai_error_of(exc, request).response()

        return handle


class ErrorDetail(BaseModel):
    message: str = Field(description="what is wrong, for people")
    type: str = Field(description="invalid_request_error, rate_limit_error or server_error")
    param: str | None = Field(description="the request parameter at fault, e.g. `model`, `messages[0].role`")
    code: str | None = Field(
        description="invalid_api_key, model_not_found, unsupported_parameter, file_too_large, overloaded, "
        "service_unavailable, timeout, …"
    )


class ErrorResponse(BaseModel):
    error: ErrorDetail


ERROR_DESCRIPTIONS = {
    400: "invalid request: a malformed or unsupported parameter (`param` names it)",
    401: "no API key, or not a valid one (`Authorization: Bearer <key>`): code invalid_api_key",
    404: "no such model (code model_not_found; GET /v1/models lists the served ones)",
    413: "the upload is over the gateway's size limit",
    429: "the model service is overloaded (its queue is full): try again after Retry-After seconds",
    500: "an unexpected error in the gateway or the model service (the message has the request id)",
    503: "the model service is unavailable (down, restarting, or loading its model): try again",
    504: "the model service did not answer within the gateway's deadline",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the error statuses a /v1 route can answer, all in OpenAI's shape."""
    return {status: {"model": ErrorResponse, "description": ERROR_DESCRIPTIONS[status]} for status in statuses}
