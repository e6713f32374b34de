"""`aiworker-exporter`, a deployable of its own: queue lengths and the oldest
message's age, pipeline and task metrics from the tracked rows, and stuck
stages, served to Prometheus (server.py runs it)."""
