"""Errors a task raises. Each takes one message string so Celery can store it
as JSON and rebuild it on the reading side.

Retryable: the service was down, too slow or overloaded — the stage is retried
with backoff. Everything else fails the stage at once with the service's
message (bad input never gets better by retrying)."""

from __future__ import annotations


class StageError(Exception):
    """A stage failed for a reason retrying cannot fix (bad input, missing data)."""


class InvalidInput(StageError):
    """The stage's input (or what a service said of it) is invalid."""


class ServiceCallError(StageError):
    """A model service refused the call (e.g. INVALID_ARGUMENT); not retried."""


class RetryableServiceError(Exception):
    """UNAVAILABLE, DEADLINE_EXCEEDED or RESOURCE_EXHAUSTED: retried with backoff."""
