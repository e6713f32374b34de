"""deploy/grafana/aiworker.json: what generate.py writes, importable (schema
version, unique ids, panels on the grid without overlap, every query on the
dashboard's Prometheus), and every series a query reads is one the code
exports; the queries parse as PromQL (promtool)."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import yaml

from tests.observability.metric_names import defined, exported, used
from tests.observability.promtool import needs_promtool, promtool

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "aiworker.json"


def load() -> dict:
    return json.loads(DASHBOARD.read_text())


def queries(dashboard: dict) -> list[str]:
    return [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]


def test_the_json_is_what_the_generator_writes():
    generator = runpy.run_path(str(GRAFANA / "generate.py"))
    assert DASHBOARD.read_text() == generator["render"](), "stale: run .venv/bin/python deploy/grafana/generate.py"


def test_the_dashboard_is_importable():
    dashboard = load()
    assert dashboard["schemaVersion"] >= 36 and dashboard["uid"] and dashboard["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        pos = panel["gridPos"]
        assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24, panel["title"]
        mine = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])}
        assert not mine & cells, f"{panel['title']} overlaps another panel"
        cells |= mine
        if panel["type"] == "row":
            continue
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip() and target["datasource"]["uid"] == "${datasource}", panel["title"]
        assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"])


def test_the_dashboard_covers_each_part():
    rows = [p["title"] for p in load()["panels"] if p["type"] == "row"]
    assert rows == ["Queues", "Pipelines", "Model services", "Gateway", "Tracking and the exporter"]
    read = set().union(*(used(q) for q in queries(load())))
    for name in (
        "aiworker_queue_length",
        "aiworker_queue_oldest_age_seconds",
        "aiworker_task_queue_wait_seconds_bucket",
        "aiworker_tasks_published_total",
        "aiworker_tasks_started_total",
        "aiworker_pipeline_duration_seconds_bucket",
        "aiworker_pipelines_stuck",
        "aiworker_stage_retries_total",
        "aiworker_grpc_latency_seconds_bucket",
        "aiworker_grpc_requests_total",
        "aiworker_grpc_in_flight",
        "aiworker_embedder_batch_size_bucket",
        "aiworker_embedder_batch_queue_seconds_bucket",
        "aiworker_llm_generated_tokens_total",
        "aiworker_service_device",
        "aiworker_service_ready",
        "aiworker_http_requests_total",
        "aiworker_http_latency_seconds_bucket",
        "aiworker_tracking_outbox_entries",
        "aiworker_tracking_dead_letters",
    ):
        assert name in read, name


def test_every_series_the_dashboard_reads_is_exported_by_the_code():
    unknown = {(q, name) for q in queries(load()) for name in used(q) if name not in exported()}
    assert unknown == set()


def test_the_scan_of_the_code_sees_its_metrics():
    """The check above would pass vacuously if the scan found nothing."""
    assert {
        "aiworker_grpc_requests_total",
        "aiworker_grpc_latency_seconds_bucket",
        "aiworker_embedder_batch_size_bucket",
        "aiworker_queue_oldest_age_seconds",
        "aiworker_tasks_published_total",
    } <= exported()
    assert "aiworker_grpc_requests" not in exported()  # a counter is read as its _total


@needs_promtool
def test_the_queries_parse_as_promql(tmp_path):
    """Each query, with Grafana's variables filled in, as a recording rule: promtool parses it."""
    rules = [
        {
            "record": f"aiworker:dashboard_query_{i}",
            "expr": q.replace("$__rate_interval", "5m").replace("$service", ".*"),
        }
        for i, q in enumerate(queries(load()))
    ]
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


def test_the_docs_name_only_metrics_the_code_exports():
    names = used((ROOT / "docs" / "operations.md").read_text())
    assert len(names) > 20
    assert names - exported() - set(defined()) == set()
