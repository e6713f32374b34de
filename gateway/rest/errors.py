"""The one place gRPC status codes (and the domain errors that carry them)
become HTTP statuses, and every error becomes the same JSON shape:
{"success": false, "error": {"code": "...", "message": "...", "details": [...]}}."""

from __future__ import annotations

import grpc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway.rest.schemas import ErrorBody
from svc_runtime.errors import ServiceError
from svc_runtime.interceptor import grpc_code
from svc_runtime.logs import get_logger

log = get_logger(__name__)

GRPC_TO_HTTP: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}
HTTP_TO_CODE = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    409: "FAILED_PRECONDITION",
    410: "GONE",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    503: "UNAVAILABLE",
}


def error_body(code: str, message: str, details: list | None = None) -> dict:
    error = {"code": code, "message": message}
    if details:
        error["details"] = details
    return {"success": False, "error": error}


def http_status_of(code: grpc.StatusCode) -> int:
    return GRPC_TO_HTTP.get(code, 500)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError) -> JSONResponse:
        own_status = getattr(exc, "http_status", None)  # an HTTP status finer than the gRPC code's
        status = own_status or http_status_of(grpc_code(exc))
        code = HTTP_TO_CODE[status] if own_status else exc.code
        return JSONResponse(error_body(code, exc.message), status_code=status)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [{"field": ".".join(str(p) for p in err["loc"]), "message": err["msg"]} for err in exc.errors()]
        summary = "; ".join(f"{d['field']}: {d['message']}" for d in details)
        return JSONResponse(error_body("INVALID_ARGUMENT", f"malformed request: {summary}", details), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = HTTP_TO_CODE.get(exc.status_code, "ERROR")
        return JSONResponse(
            error_body(code, str(exc.detail)), status_code=exc.status_code, headers=getattr(exc, "headers", None)
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        request_id = getattr(request.state, "request_id", "")
        log.error("request_failed", path=request.url.path, exc_info=exc)
        return JSONResponse(
            error_body("INTERNAL", f"internal error (request id {request_id}); see the gateway log"), status_code=500
        )


ERROR_DESCRIPTIONS = {
    400: "bad input: the message says what is wrong (a file that is not what it claims, a bad cursor)",
    401: "no API key, or not a valid one",
    404: "no such pipeline (or part)",
    409: "the pipeline is in the wrong state for this (still running, already ended, not failed)",
    410: "it was kept for a while and is no longer (an expired result)",
    413: "the upload is over the size limit",
    415: "a body in a media type this route does not take",
    429: "a model service is overloaded: try again (Retry-After says when)",
    422: "a malformed request: a missing or wrongly typed field (details name each)",
    503: "the broker or the task tracking is unavailable: nothing was done, try again",
}


def error_responses(*statuses: int) -> dict[int | str, dict]:
    """OpenAPI `responses` for the error statuses a route can answer, all in the error shape."""
    return {status: {"model": ErrorBody, "description": ERROR_DESCRIPTIONS[status]} for status in statuses}
