"""Making the services' engine modules importable on a bare PyTorch machine.

Imports svc_llm / svc_runtime / svc_embedder from this checkout (no install
needed) and, for the few libraries those modules import at the top but the
check never uses (grpc for the error classes' status codes, structlog for the
logger, prometheus_client for the batcher's metrics), puts small stand-ins in
sys.modules when the real ones are missing. With the project's virtualenv
nothing is replaced."""

from __future__ import annotations

import enum
import importlib
import importlib.abc
import importlib.util
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {"svc_runtime": "svc-runtime", "svc_llm": "svc-llm", "svc_embedder": "svc-embedder"}


def available(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


class _Blocker(importlib.abc.MetaPathFinder):
    """Makes the named top-level packages unimportable (to rehearse a bare machine)."""

    def __init__(self, names: set[str]) -> None:
        self.names = names

    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in self.names:
            raise ModuleNotFoundError(f"{fullname} is hidden (--simulate-bare)", name=fullname)
        return None


def hide(names: set[str]) -> None:
    sys.meta_path.insert(0, _Blocker(names))
    for loaded in [m for m in sys.modules if m.split(".")[0] in names]:
        del sys.modules[loaded]


def install() -> dict[str, str]:
    """Sets up the imports; returns {library: "real" | "stand-in"}."""
    report = {}
    for name, make in (("grpc", _grpc), ("structlog", _structlog), ("prometheus_client", _prometheus)):
        if available(name):
            report[name] = "real"
        else:
            sys.modules[name] = make()
            report[name] = "stand-in"
    for package, folder in PACKAGES.items():
        # A package object over the folder, without running its __init__ (svc_runtime's pulls the
        # gRPC server, pydantic settings and more): submodules then import one by one.
        module = types.ModuleType(package)
        module.__path__ = [str(ROOT / folder)]
        sys.modules[package] = module
    return report


def _grpc() -> types.ModuleType:
    module = types.ModuleType("grpc")
    module.StatusCode = enum.Enum(  # the codes svc_runtime.errors names
        "StatusCode",
        "OK INTERNAL INVALID_ARGUMENT NOT_FOUND RESOURCE_EXHAUSTED UNAVAILABLE DEADLINE_EXCEEDED FAILED_PRECONDITION",
    )
    return module


class _Logger:
    def __init__(self, name: str | None) -> None:
        self.name = name

    def _write(self, level: str, event: str, **fields) -> None:
        if level in ("warning", "error"):
            details = " ".join(f"{k}={v}" for k, v in fields.items() if k != "exc_info")
            print(f"[{level}] {self.name}: {event} {details}", file=sys.stderr)

    def debug(self, event: str, **fields) -> None:
        self._write("debug", event, **fields)

    def info(self, event: str, **fields) -> None:
        self._write("info", event, **fields)

    def warning(self, event: str, **fields) -> None:
        self._write("warning", event, **fields)

    def error(self, event: str, **fields) -> None:
        self._write("error", event, **fields)


def _structlog() -> types.ModuleType:
    module = types.ModuleType("structlog")
    module.get_logger = _Logger
    module.stdlib = types.SimpleNamespace(BoundLogger=_Logger)
    return module


class _Metric:
    def __init__(self, *args, **kwargs) -> None: ...

    def labels(self, *args, **kwargs) -> _Metric:
        return self

    def set(self, value: float) -> None: ...

    def inc(self, value: float = 1) -> None: ...

    def observe(self, value: float) -> None: ...


def _prometheus() -> types.ModuleType:
    module = types.ModuleType("prometheus_client")
    module.Counter = module.Gauge = module.Histogram = _Metric
    module.CollectorRegistry = _Metric
    module.start_http_server = lambda *a, **k: (_ for _ in ()).throw(RuntimeError("no prometheus_client"))
    return module
