"""The front door: REST (FastAPI) for web pages, gRPC (aiworker.gateway.v1) for
other back ends, aggregated health probes, API keys, a live dashboard."""
