"""Tests manage child processes with the launcher's own supervisor."""

from aiworker_local.procs import ManagedProcess

__all__ = ["ManagedProcess"]
