"""structlog, configured once per process: JSON lines (console renderer on a
TTY), with ids bound through contextvars (request_id, pipeline_id, task_id).

The services' engine modules log through the standard library instead (they
import without structlog), with their fields in `extra`:

    log = logging.getLogger(__name__)
    log.info("model_loaded", extra={"model": name, "device": device})

Those records go through the same renderer, their `extra` fields as keys of the
line like structlog's own (only for the services' loggers: other libraries'
extras, such as Celery's `data` with a task's arguments and result, stay out)."""

from __future__ import annotations

import logging
import sys

import structlog

from svc_runtime import tracing

# Loggers whose records' `extra` fields become keys of the line: the services' packages.
_FIELDS_FROM = "svc_"


class _CurrentStderr:
    """Writes to whatever sys.stderr is now (test capture swaps it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(level: str = "info", fmt: str = "auto") -> None:
    use_console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    renderer = structlog.dev.ConsoleRenderer() if use_console else structlog.processors.JSONRenderer()
    numeric_level = logging.getLevelName(level.upper())
    if not isinstance(numeric_level, int):
        raise ValueError(f"unknown log level {level!r}")
    shared = [
        structlog.contextvars.merge_contextvars,
        _add_trace_ids,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=structlog.WriteLoggerFactory(file=_CurrentStderr()),
        cache_logger_on_first_use=True,
    )
    # Records of stdlib logging (the services' engine modules; libraries such as grpc,
    # transformers, celery) go through the same renderer so one process writes one format.
    handler = logging.StreamHandler(_CurrentStderr())
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            # format_exc_info: a library's log.exception() shows its traceback, not a tuple's repr.
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name, _add_extra_fields],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric_level)


_extra_adder = structlog.stdlib.ExtraAdder()


def _add_extra_fields(logger: object, method: str, event: dict) -> dict:
    """A service logger's `extra={...}` fields as keys of the line."""
    if event.get("logger", "").startswith(_FIELDS_FROM):
        return _extra_adder(logger, method, event)
    return event


def _add_trace_ids(logger: object, method: str, event: dict) -> dict:
    """trace_id and span_id of the current span on every line, while tracing is on."""
    ids = tracing.current_ids()
    if ids is not None:
        event.setdefault("trace_id", ids[0])
        event.setdefault("span_id", ids[1])
    return event


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    return structlog.get_logger(name)
