"""Shared by the benchmark scripts: time things, print a table, write JSON.

Run a benchmark from the repository root, e.g. `.venv/bin/python -m bench.embedder`.
Figures are ratios against an in-process baseline measured in the same run."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def time_calls(fn: Callable[[], Any], repeat: int, warmup: int = 3) -> list[float]:
    """Latencies in seconds of `repeat` sequential calls after `warmup` calls."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return out


def summary(latencies: list[float]) -> dict[str, float]:
    return {
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p95_ms": percentile(latencies, 0.95) * 1000,
        "mean_ms": statistics.fmean(latencies) * 1000 if latencies else float("nan"),
    }


def report(name: str, columns: list[str], rows: list[list[Any]], extra: dict[str, Any] | None = None) -> Path:
    """Prints a table and writes bench/results/<name>.json with the same figures."""
    table = Table(title=f"{name} ({machine()['cpus']} CPUs)")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row])
    # Not a terminal (a log, a pipe): wide enough that a ratio table does not wrap.
    Console(width=None if sys.stdout.isatty() else 160).print(table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(
        json.dumps(
            {
                "benchmark": name,
                "machine": machine(),
                "columns": columns,
                "rows": rows,
                **(extra or {}),
            },
            indent=2,
            default=str,
        )
    )
    return path
