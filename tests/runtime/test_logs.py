"""One log format per process: the engine modules' standard-library records
(fields in `extra`) come out as JSON lines with those fields as keys, beside
structlog's own, with the bound request id; other libraries' extras stay out."""

from __future__ import annotations

import json
import logging

import structlog

from svc_runtime.logs import configure_logging


def _lines(err: str) -> dict[str, dict]:
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    return {line["event"]: line for line in lines}


def test_an_engine_modules_extra_fields_are_keys_of_its_json_line(capfd):
    configure_logging("info", "json")
    structlog.contextvars.bind_contextvars(request_id="req-7")
    try:
        logging.getLogger("svc_demo.model").info("model_loaded", extra={"device": "cpu", "seconds": 1.5})
        structlog.get_logger("svc_demo.servicer").info("model_warm", device="cpu")
    finally:
        structlog.contextvars.unbind_contextvars("request_id")
    lines = _lines(capfd.readouterr().err)
    loaded = lines["model_loaded"]
    assert loaded["device"] == "cpu" and loaded["seconds"] == 1.5
    assert loaded["request_id"] == "req-7" and loaded["level"] == "info" and loaded["logger"] == "svc_demo.model"
    assert lines["model_warm"]["device"] == "cpu" and lines["model_warm"]["request_id"] == "req-7"


def test_an_engine_modules_exception_is_logged_with_its_traceback(capfd):
    configure_logging("info", "json")
    try:
        raise KeyError("the batch broke")
    except KeyError as exc:
        logging.getLogger("svc_demo.batching").error("batcher_error", extra={"batcher": "demo"}, exc_info=exc)
    line = _lines(capfd.readouterr().err)["batcher_error"]
    assert line["batcher"] == "demo" and "KeyError: 'the batch broke'" in line["exception"]


def test_other_libraries_extras_stay_out_of_the_line(capfd):
    """Celery puts a task's arguments and result in `extra={"data": ...}`; only its message is logged."""
    configure_logging("info", "json")
    logging.getLogger("celery.app.trace").info("Task demo succeeded", extra={"data": {"result": "secret"}})
    line = _lines(capfd.readouterr().err)["Task demo succeeded"]
    assert "data" not in line and "secret" not in json.dumps(line)
