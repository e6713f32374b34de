"""svc-embedder (work in progress)."""
