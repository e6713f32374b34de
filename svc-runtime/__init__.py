"""What every aiworker model service shares: settings, CLI, logging, errors,
health, metrics, device choice, dynamic batching and the gRPC server bootstrap.

Importing the package imports none of them: the engine modules (errors,
batching, device) load on a machine without the serving stack (grpc,
structlog, prometheus_client, pydantic); import each name from its module."""
