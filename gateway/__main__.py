"""`aiworker-gateway`: REST on --port, gRPC on --grpc-port (settings: AIWORKER_GATEWAY_*,
broker/database/services: AIWORKER_*)."""

from __future__ import annotations

from collections.abc import Sequence

from gateway.settings import GatewaySettings
from svc_runtime.cli import settings_from_cli


def main(argv: Sequence[str] | None = None) -> None:
    settings = settings_from_cli(GatewaySettings, argv, prog="aiworker-gateway")
    import uvicorn

    from gateway.app import create_app
    from svc_runtime.tracing import isolated_requests

    uvicorn.run(
        isolated_requests(create_app(settings)),
        host=settings.host,
        port=settings.port,
        log_config=None,
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
