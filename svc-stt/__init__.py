"""svc-stt (work in progress)."""
