"""svc-embedder: texts → vectors (sentence-transformers) with server-side
dynamic batching; GPU when present, else CPU."""
