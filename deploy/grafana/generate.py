"""Writes deploy/grafana/aiworker.json, the Grafana dashboard (import it, or
provision it: provisioning/). Edit the panels here, then
`.venv/bin/python deploy/grafana/generate.py`; tests/observability fails while
the JSON differs from what this writes, or names a metric the code does not
export."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "aiworker.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"
SERVICE = 'service=~"$service"'


def _target(expr: str, legend: str, ref: int) -> dict[str, Any]:
    return {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend, "refId": chr(ord("A") + ref)}


def panel(title: str, targets: list[tuple[str, str]], unit: str = "short", kind: str = "timeseries", **extra: Any):
    """A panel: (PromQL, legend) per series; placed by `rows`."""
    body: dict[str, Any] = {
        "type": kind,
        "title": title,
        "datasource": DATASOURCE,
        "targets": [_target(expr, legend, i) for i, (expr, legend) in enumerate(targets)],
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}},
    }
    if kind == "stat":
        body["options"] = {"reduceOptions": {"calcs": ["lastNotNull"]}, "textMode": extra.pop("text_mode", "auto")}
    body.update(extra)
    return body


def quantile(q: float, metric: str, by: str, selector: str = "") -> str:
    inner = f"{metric}_bucket{{{selector}}}" if selector else f"{metric}_bucket"
    return f"histogram_quantile({q}, sum by ({by}, le) (rate({inner}[{RATE}])))"


ROWS: list[tuple[str, list[dict[str, Any]]]] = [
    (
        "Queues",
        [
            panel("Messages waiting", [("sum by (queue) (aiworker_queue_length)", "{{queue}}")]),
            panel(
                "Oldest waiting message",
                [("max by (queue) (aiworker_queue_oldest_age_seconds)", "{{queue}}")],
                unit="s",
            ),
            panel("Delivered, not acknowledged", [("sum by (queue) (aiworker_queue_unacked)", "{{queue}}")]),
            panel(
                "Time waited in queue (p50, p95)",
                [
                    (quantile(0.5, "aiworker_task_queue_wait_seconds", "queue"), "{{queue}} p50"),
                    (quantile(0.95, "aiworker_task_queue_wait_seconds", "queue"), "{{queue}} p95"),
                ],
                unit="s",
            ),
            panel(
                "Tasks published / started per second",
                [
                    (f"sum by (queue) (rate(aiworker_tasks_published_total[{RATE}]))", "{{queue}} published"),
                    (f"sum by (queue) (rate(aiworker_tasks_started_total[{RATE}]))", "{{queue}} started"),
                ],
                unit="ops",
            ),
            panel(
                "Tasks failed per second",
                [(f'sum by (queue) (rate(aiworker_tasks_finished_total{{state="FAILURE"}}[{RATE}]))', "{{queue}}")],
                unit="ops",
            ),
        ],
    ),
    (
        "Pipelines",
        [
            panel(
                "Pipeline duration (p50, p95)",
                [
                    (quantile(0.5, "aiworker_pipeline_duration_seconds", "pipeline"), "{{pipeline}} p50"),
                    (quantile(0.95, "aiworker_pipeline_duration_seconds", "pipeline"), "{{pipeline}} p95"),
                ],
                unit="s",
            ),
            panel(
                "Pipelines failed or revoked (share of those that ended)",
                [
                    (
                        "sum by (pipeline) (rate(aiworker_pipeline_duration_seconds_count"
                        f'{{state!="SUCCESS"}}[{RATE}])) / sum by (pipeline) '
                        f"(rate(aiworker_pipeline_duration_seconds_count[{RATE}]))",
                        "{{pipeline}}",
                    )
                ],
                unit="percentunit",
            ),
            panel(
                "Pipelines ended per second",
                [
                    (
                        f"sum by (pipeline, state) (rate(aiworker_pipeline_duration_seconds_count[{RATE}]))",
                        "{{pipeline}} {{state}}",
                    )
                ],
                unit="ops",
            ),
            panel("Pipelines stuck", [("sum by (pipeline) (aiworker_pipelines_stuck)", "{{pipeline}}")]),
            panel(
                "Stage retries per minute",
                [(f"60 * sum by (pipeline) (rate(aiworker_stage_retries_total[{RATE}]))", "{{pipeline}}")],
            ),
        ],
    ),
    (
        "Model services",
        [
            panel(
                "Ready (model loaded and warm)",
                [(f"aiworker_service_ready{{{SERVICE}}}", "{{service}}")],
                kind="stat",
                text_mode="value_and_name",
            ),
            panel(
                "Device",
                [(f"aiworker_service_device{{{SERVICE}}} == 1", "{{service}}: {{device}}")],
                kind="stat",
                text_mode="name",
            ),
            panel(
                "RPCs per second by method and code",
                [
                    (
                        f"sum by (service, method, code) (rate(aiworker_grpc_requests_total{{{SERVICE}}}[{RATE}]))",
                        "{{service}} {{method}} {{code}}",
                    )
                ],
                unit="reqps",
            ),
            panel(
                "RPC latency p95 by method",
                [
                    (
                        quantile(0.95, "aiworker_grpc_latency_seconds", "service, method", SERVICE),
                        "{{service}} {{method}}",
                    )
                ],
                unit="s",
            ),
            panel(
                "RPCs in flight",
                [(f"sum by (service, method) (aiworker_grpc_in_flight{{{SERVICE}}})", "{{service}} {{method}}")],
            ),
            panel(
                "Model loaded (LLM load / unload)",
                [(f"aiworker_model_loaded{{{SERVICE}}}", "{{service}}")],
            ),
            panel(
                "Embedder batch size (p50, p95)",
                [
                    (quantile(0.5, "aiworker_embedder_batch_size", "service"), "{{service}} p50"),
                    (quantile(0.95, "aiworker_embedder_batch_size", "service"), "{{service}} p95"),
                ],
            ),
            panel(
                "Embedder queue time p95, items waiting",
                [
                    (quantile(0.95, "aiworker_embedder_batch_queue_seconds", "service"), "{{service}} queue p95 (s)"),
                    ("sum by (service) (aiworker_embedder_batch_queued_items)", "{{service}} items waiting"),
                ],
            ),
            panel(
                "LLM tokens per second",
                [(f"sum by (service) (rate(aiworker_llm_generated_tokens_total[{RATE}]))", "{{service}}")],
            ),
            panel(
                "LLM time to first token p95, sequences",
                [
                    (quantile(0.95, "aiworker_llm_time_to_first_token_seconds", "service"), "{{service}} TTFT p95 (s)"),
                    ("sum by (service) (aiworker_llm_running_sequences)", "{{service}} running"),
                    ("sum by (service) (aiworker_llm_waiting_sequences)", "{{service}} waiting"),
                ],
            ),
            panel(
                "STT real-time factor p95",
                [(quantile(0.95, "aiworker_stt_real_time_factor", "service"), "{{service}}")],
            ),
        ],
    ),
    (
        "Gateway",
        [
            panel(
                "Requests per second by route and status",
                [
                    (
                        f"sum by (route, status) (rate(aiworker_http_requests_total[{RATE}]))",
                        "{{route}} {{status}}",
                    )
                ],
                unit="reqps",
            ),
            panel(
                "Latency p95 by route",
                [(quantile(0.95, "aiworker_http_latency_seconds", "route"), "{{route}}")],
                unit="s",
            ),
            panel(
                "5xx share",
                [
                    (
                        f'sum(rate(aiworker_http_requests_total{{status=~"5.."}}[{RATE}]))'
                        f" / sum(rate(aiworker_http_requests_total[{RATE}]))",
                        "5xx",
                    )
                ],
                unit="percentunit",
            ),
        ],
    ),
    (
        "Tracking and the exporter",
        [
            panel("Outbox entries waiting", [("aiworker_tracking_outbox_entries", "entries")]),
            panel("Oldest outbox entry", [("aiworker_tracking_outbox_oldest_age_seconds", "age")], unit="s"),
            panel("Dead-lettered tracking records", [("aiworker_tracking_dead_letters", "dead letters")]),
            panel(
                "Exporter: sources readable, seconds since its last poll",
                [
                    ("aiworker_exporter_up", "{{source}} up"),
                    ("time() - aiworker_exporter_last_poll_timestamp_seconds", "since last poll (s)"),
                    ("aiworker_exporter_lag_seconds", "rows counted up to (s ago)"),
                ],
            ),
            panel("Scrape targets up", [('sum by (component) (up{job="aiworker"})', "{{component}}")]),
        ],
    ),
]


def dashboard() -> dict[str, Any]:
    panels, y, next_id = [], 0, 1
    for title, row in ROWS:
        panels.append(
            {
                "type": "row",
                "title": title,
                "id": next_id,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
            }
        )
        next_id, y = next_id + 1, y + 1
        for i, body in enumerate(row):
            width = 8
            x = (i % 3) * width
            if i and i % 3 == 0:
                y += 8
            panels.append({**body, "id": next_id, "gridPos": {"h": 8, "w": width, "x": x, "y": y}})
            next_id += 1
        y += 8
    return {
        "title": "aiworker",
        "uid": "aiworker-overview",
        "description": "Queues, pipelines, model services, the gateway and tracking (deploy/grafana/generate.py)",
        "tags": ["aiworker"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [
                {"name": "datasource", "label": "Prometheus", "type": "datasource", "query": "prometheus"},
                {
                    "name": "service",
                    "label": "Model service",
                    "type": "query",
                    "datasource": DATASOURCE,
                    "query": {"query": "label_values(aiworker_service_ready, service)", "refId": "service"},
                    "definition": "label_values(aiworker_service_ready, service)",
                    "refresh": 2,
                    "multi": True,
                    "includeAll": True,
                    "allValue": ".*",
                    "current": {"text": "All", "value": "$__all"},
                },
            ]
        },
        "annotations": {"list": []},
        "panels": panels,
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"


if __name__ == "__main__":
    OUT.write_text(render())
    print(f"wrote {OUT}")
