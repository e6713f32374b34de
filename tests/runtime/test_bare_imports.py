"""The engine modules (what wraps a model library, below the servicers) import on
a bare PyTorch machine: with the serving stack (grpc, structlog,
prometheus_client, pydantic, pydantic-settings, OpenTelemetry) made
unimportable in a fresh interpreter, each of them still imports."""

from __future__ import annotations

import json
import subprocess
import sys

SERVING_STACK = ("grpc", "structlog", "prometheus_client", "pydantic", "pydantic_settings", "opentelemetry")
ENGINE_MODULES = (
    "svc_runtime.errors",
    "svc_runtime.batching",
    "svc_runtime.device",
    "svc_parser.model",
    "svc_embedder.model",
    "svc_llm.decoding",
    "svc_llm.ragged",
    "svc_llm.runner",
    "svc_llm.sequence",
    "svc_llm.scheduler",
    "svc_llm.model",
    "svc_stt.audio",
    "svc_stt.context",
    "svc_stt.model",
)

# Run in a child interpreter: the blocker must be in place before anything is imported.
_CHILD = """
import importlib, importlib.abc, json, sys, traceback

hidden = set(sys.argv[1].split(","))

class Hidden(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in hidden:
            raise ModuleNotFoundError(f"{fullname} is hidden", name=fullname)
        return None

sys.meta_path.insert(0, Hidden())
report = {"failed": {}, "stack_loaded": []}
try:
    import grpc  # noqa: F401
except ModuleNotFoundError:
    report["blocker_works"] = True
for name in sys.argv[2].split(","):
    try:
        importlib.import_module(name)
    except Exception:
        report["failed"][name] = traceback.format_exc(limit=-3)
report["stack_loaded"] = sorted(m for m in sys.modules if m.split(".")[0] in hidden)
print(json.dumps(report))
"""


def test_engine_modules_import_without_the_serving_stack():
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, ",".join(SERVING_STACK), ",".join(ENGINE_MODULES)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.splitlines()[-1])
    assert report.get("blocker_works"), "the child could still import grpc"
    failures = "\n".join(f"{name}:\n{trace}" for name, trace in report["failed"].items())
    assert report["failed"] == {}, failures
    assert report["stack_loaded"] == []
