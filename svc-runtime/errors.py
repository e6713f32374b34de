"""Domain errors and the one table that maps them to gRPC status codes.

Models and servicers raise these; the interceptor (svc_runtime.interceptor) turns
them into a status with the human message. Anything else becomes INTERNAL with
the traceback logged, never sent.
"""

from __future__ import annotations

import grpc


class ServiceError(Exception):
    """An error the caller should see, with a message that says what is wrong."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(ServiceError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class TooLarge(InvalidArgument):
    """Input over a size limit: INVALID_ARGUMENT on gRPC, 413 over HTTP."""

    http_status = 413


class MalformedRequest(InvalidArgument):
    """A request whose shape is wrong (a missing field, a wrong type): INVALID_ARGUMENT on
    gRPC, 422 over HTTP like the gateway's other request validation."""

    http_status = 422


class NotFound(ServiceError):
    code = grpc.StatusCode.NOT_FOUND


class Gone(NotFound):
    """It existed and is no longer kept (e.g. an expired result): NOT_FOUND on gRPC, 410 over HTTP."""

    http_status = 410


class ResourceExhausted(ServiceError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(ServiceError):
    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(ServiceError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class FailedPrecondition(ServiceError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class StartupError(RuntimeError):
    """A service cannot start as configured (e.g. CUDA asked for, none present)."""
