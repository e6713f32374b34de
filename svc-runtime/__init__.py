"""What every aiworker model service shares: settings, CLI, logging, errors,
health, metrics, device choice and the gRPC server bootstrap."""

from svc_runtime.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    ServiceError,
    Unavailable,
)
from svc_runtime.server import ServicerBase, ServiceServer, create_server, serve
from svc_runtime.settings import ServiceSettings

__all__ = [
    "DeadlineExceeded",
    "FailedPrecondition",
    "InvalidArgument",
    "ServicerBase",
    "NotFound",
    "ResourceExhausted",
    "ServiceError",
    "ServiceServer",
    "ServiceSettings",
    "Unavailable",
    "create_server",
    "serve",
]
