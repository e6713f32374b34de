"""Pipelines: the registry (registry.py), where tasks are declared
(declarations.py), the stage base class every task runs on (stage.py),
submission of a chain, live progress, the checks of uploaded files, the
per-process resources stages use, and tasks/: one module per pipeline, plus
beat's maintenance tasks."""
