"""Every benchmark target (docs/decisions/0014-benchmark-targets.md) in one table, from the benches' last results.

    .venv/bin/python -m bench.summary

Reads bench/results/<bench>.json (embedder, stt, llm, grpc_overhead,
orchestration, gateway, tracking), prints what, figure, target, met / missed
and where the figure comes from (bench and date), and writes
bench/results/summary.json. A bench never run (no file) or whose file lacks a
figure shows as "not run". Nothing is measured here: run the benches first
(bench/README.md).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bench.common import RESULTS, report

TRACING_OFF_NOISE = 1.05  # "costs nothing measurable": within the runs' noise of the stripped code


@dataclass
class Check:
    what: str
    bench: str
    target: str
    figure: Callable[[dict[str, Any]], tuple[str, bool]]  # (figure as shown, met); KeyError: not run


def _stt(d: dict[str, Any]) -> tuple[str, bool]:
    column = d["columns"].index("ratio")
    ratio = next(row[column] for row in d["rows"] if row[0] == "service")
    return f"{ratio:.2f}x", ratio >= 0.95


def _status(d: dict[str, Any]) -> tuple[str, bool]:
    value = d["targets"]["status_p50_ms"]
    return f"{value:.1f} ms", value <= d["targets"]["status_p50_ms_target"]


def _history(d: dict[str, Any]) -> tuple[str, bool]:
    value = d["targets"]["history_p95_ms"]
    return f"{value:.1f} ms (worst of 3)", value <= d["targets"]["history_p95_ms_target"]


def _tracked_rate(d: dict[str, Any]) -> tuple[str, bool]:
    t = d["targets"]
    return (
        f"{t['tracked_tasks_per_s_vs_bare']:.2f}x, {t['records_lost']} lost, {t['records_duplicated']} dup",
        bool(t["rate_met"]),
    )


def _tracking_queries(case: str, key: str, limit: float) -> Callable[[dict[str, Any]], tuple[str, bool]]:
    def figure(d: dict[str, Any]) -> tuple[str, bool]:
        value = d["queries"]["1000000"][case][key]
        return f"{value:.1f} ms", value <= limit

    return figure


def _tracking_rate(d: dict[str, Any]) -> tuple[str, bool]:
    on, off = d["throughput"]["on"], d["throughput"]["off"]
    ratio = on["tasks_per_s"] / off["tasks_per_s"]
    return f"{ratio:.2f}x, {int(on['lost'])} lost, {int(on['duplicated'])} dup", bool(d["meets_target"])


CHECKS = [
    Check(
        "embedder @1 caller vs in-process one-by-one",
        "embedder",
        "≥ 0.9x",
        lambda d: (f"{d['targets']['alone_vs_one_by_one']:.2f}x", bool(d["targets"]["alone_met"])),
    ),
    Check(
        "embedder @32 vs in-process batched",
        "embedder",
        "≥ 0.85x",
        lambda d: (f"{d['targets']['service_vs_batched']:.2f}x", bool(d["targets"]["batched_met"])),
    ),
    Check("STT service vs in-process", "stt", "≥ 0.95x", _stt),
    Check(
        "LLM 8 streams vs the same 8 one at a time",
        "llm",
        "≥ 4x",
        lambda d: (
            f"{d['targets']['batched_vs_sequential']:.2f}x, TTFT p95 {d['targets']['ttft_p95_ms_at_top']:.0f} ms",
            bool(d["targets"]["batched_met"]),
        ),
    ),
    Check(
        "LLM one stream vs stock generate tokens/s",
        "llm",
        "≥ 0.95x",
        lambda d: (f"{d['targets']['single_vs_stock']:.2f}x", bool(d["targets"]["single_met"])),
    ),
    Check(
        "tiny call p50 vs bare grpcio echo p50",
        "grpc_overhead",
        "≤ 1.5x",
        lambda d: (f"{d['targets']['tiny_call_p50_vs_echo_p50']:.2f}x", bool(d["targets"]["met"])),
    ),
    Check(
        "thin stage hop p50 vs bare Celery hop p50",
        "orchestration",
        "≤ 2x",
        lambda d: (f"{d['targets']['thin_hop_p50_vs_bare']:.2f}x", bool(d["targets"]["hop_met"])),
    ),
    Check(
        "tracing off: thin hop p50 vs tracing code stripped",
        "orchestration",
        "≤ 1.05x",
        lambda d: (
            f"{d['targets']['tracing_off_hop_p50_vs_stripped']:.2f}x",
            d["targets"]["tracing_off_hop_p50_vs_stripped"] <= TRACING_OFF_NOISE,
        ),
    ),
    Check("tracked tasks/s vs bare Celery tasks/s", "orchestration", "≥ 0.6x, 0 lost", _tracked_rate),
    Check("  (same, vs the tracking-off orchestrator app)", "tracking", "≥ 0.6x, 0 lost", _tracking_rate),
    Check("pipeline status p50 at 1M rows (gateway)", "gateway", "≤ 10 ms", _status),
    Check("history p95 at 1M rows (gateway)", "gateway", "≤ 50 ms", _history),
    Check(
        "  (status p50 at 1M, in-process)", "tracking", "≤ 10 ms", _tracking_queries("pipeline_status", "p50_ms", 10)
    ),
    Check(
        "  (history p95 at 1M, in-process)",
        "tracking",
        "≤ 50 ms",
        _tracking_queries("history_first_page", "p95_ms", 50),
    ),
    Check(
        "search p95 at 1M chunks (PostgreSQL, through the gateway)",
        "search",
        "≤ 20 ms",
        lambda d: (f"{d['results']['1000000']['search']['p95_ms']:.1f} ms", bool(d["target_met"])),
    ),
]


def load(bench: str) -> dict[str, Any] | None:
    path = RESULTS / f"{bench}.json"
    return json.loads(path.read_text()) if path.exists() else None


def main(argv: Sequence[str] | None = None) -> None:
    argparse.ArgumentParser(
        prog="python -m bench.summary", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    ).parse_args(argv)
    rows, checks = [], []
    for check in CHECKS:
        data = load(check.bench)
        figure, verdict, date = "-", "not run", "-"
        if data is not None:
            date = data.get("machine", {}).get("date", "?")
            try:
                figure, met = check.figure(data)
                verdict = "met" if met else "MISSED"
            except (KeyError, ValueError, StopIteration, TypeError):
                verdict = "not run"
        rows.append([check.what, figure, check.target, verdict, f"{check.bench} ({date})"])
        checks.append(
            {
                "what": check.what.strip(),
                "bench": check.bench,
                "figure": figure,
                "target": check.target,
                "result": verdict,
                "date": date,
            }
        )
    primary = [c for c, check in zip(checks, CHECKS) if not check.what.startswith(" ")]
    counts = {v: sum(c["result"] == v for c in primary) for v in ("met", "MISSED", "not run")}
    path = report(
        "summary",
        ["target", "figure", "wanted", "result", "from (date)"],
        rows,
        extra={"checks": checks, "primary_counts": counts},
    )
    print(
        f"{counts['met']} met, {counts['MISSED']} missed, {counts['not run']} not run "
        f"(of {len(primary)} targets; indented rows are supporting figures); "
        f"wrote {path.relative_to(RESULTS.parent.parent)}"
    )


if __name__ == "__main__":
    main()
