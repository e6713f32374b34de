"""The Celery side: one app, one routing table, thin tasks that call the model
services over gRPC, the pipelines they form, and task tracking."""
