"""svc-llm (work in progress)."""
