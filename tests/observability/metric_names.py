"""The Prometheus series the code exports, read from its source (every
Counter / Gauge / Histogram / Summary it creates, the custom collectors'
families, and the names built from a prefix such as the batcher's
f"{prefix}_size" with each `metric_prefix` given), and the names a PromQL
expression uses."""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CODE = ("orchestrator", "gateway", "svc-runtime", "svc-parser", "svc-embedder", "svc-llm", "svc-stt")
KINDS = {
    "Counter": "counter",
    "CounterMetricFamily": "counter",
    "Gauge": "gauge",
    "GaugeMetricFamily": "gauge",
    "gauge": "gauge",  # aiworker-exporter's helper for its scrape-time families
    "Histogram": "histogram",
    "HistogramMetricFamily": "histogram",
    "histogram": "histogram",  # svc_runtime.metrics.ServiceMetrics.histogram
    "Summary": "summary",
}
SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("", "_sum", "_count"),
}
PROMETHEUS_OWN = {"up"}  # series Prometheus itself adds to every target
NAME = re.compile(r"\b(aiworker_[a-z0-9_]+)\b")


@cache
def defined() -> dict[str, str]:
    """Metric name -> kind, for every metric the code defines."""
    found: dict[str, str] = {}
    templates: list[tuple[str, str]] = []  # (suffix, kind) of names built from a prefix
    prefixes: set[str] = set()
    for folder in CODE:
        for path in sorted((ROOT / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.arguments):
                    positional = list(zip(node.args[len(node.args) - len(node.defaults) :], node.defaults))
                    for arg, default in positional + list(zip(node.kwonlyargs, node.kw_defaults)):
                        if arg.arg == "metric_prefix" and isinstance(default, ast.Constant):
                            prefixes.add(default.value)
                if not isinstance(node, ast.Call):
                    continue
                for keyword in node.keywords:
                    if keyword.arg == "metric_prefix" and isinstance(keyword.value, ast.Constant):
                        prefixes.add(keyword.value.value)
                func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
                kind = KINDS.get(func or "")
                if kind is None or not node.args:
                    continue
                first = node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    if first.value.startswith("aiworker_"):
                        found[first.value] = kind
                elif isinstance(first, ast.JoinedStr) and isinstance(first.values[0], ast.FormattedValue):
                    rest = first.values[1:]
                    if len(rest) == 1 and isinstance(rest[0], ast.Constant):
                        templates.append((rest[0].value, kind))
    for prefix in prefixes:
        for suffix, kind in templates:
            found[f"{prefix}{suffix}"] = kind
    return found


@cache
def exported() -> set[str]:
    """Every series name those metrics expose (a counter's _total, a histogram's _bucket/_sum/_count)."""
    out = set(PROMETHEUS_OWN)
    for name, kind in defined().items():
        base = name.removesuffix("_total") if kind == "counter" else name
        out.update(base + suffix for suffix in SUFFIXES[kind])
    return out


def used(expr: str) -> set[str]:
    """The aiworker series an expression reads."""
    return set(NAME.findall(expr))
