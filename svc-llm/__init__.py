"""svc-llm: chat generation with token streaming (transformers causal LM), with
explicit model control (Preload / Unload / ModelStatus); GPU with CPU fallback."""
