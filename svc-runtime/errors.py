"""Domain errors: what models and servicers raise when a request cannot be served.

Each names its gRPC status as a plain string (`code`), so the engine modules
that raise them need no grpc; the interceptor (svc_runtime.interceptor) turns
them into that status with the human message. Anything else becomes INTERNAL
with the traceback logged, never sent. `http_status`, where a class has one, is
an HTTP status finer than its gRPC code's.
"""

from __future__ import annotations


class ServiceError(Exception):
    """An error the caller should see, with a message that says what is wrong."""

    code: str = "INTERNAL"  # the name of a grpc.StatusCode

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(ServiceError):
    code = "INVALID_ARGUMENT"


class TooLarge(InvalidArgument):
    """Input over a size limit: INVALID_ARGUMENT on gRPC, 413 over HTTP."""

    http_status = 413


class MalformedRequest(InvalidArgument):
    """A request whose shape is wrong (a missing field, a wrong type): INVALID_ARGUMENT on
    gRPC, 422 over HTTP like the gateway's other request validation."""

    http_status = 422


class NotFound(ServiceError):
    code = "NOT_FOUND"


class Gone(NotFound):
    """It existed and is no longer kept (e.g. an expired result): NOT_FOUND on gRPC, 410 over HTTP."""

    http_status = 410


class ResourceExhausted(ServiceError):
    code = "RESOURCE_EXHAUSTED"


class Unavailable(ServiceError):
    code = "UNAVAILABLE"


class DeadlineExceeded(ServiceError):
    code = "DEADLINE_EXCEEDED"


class FailedPrecondition(ServiceError):
    code = "FAILED_PRECONDITION"


class StartupError(RuntimeError):
    """A service cannot start as configured (e.g. CUDA asked for, none present)."""
