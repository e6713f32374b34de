"""deploy/prometheus: the alert rules are valid (promtool check rules), each one
fires on synthetic series that should raise it and stays quiet on ones that
should not (promtool test rules alerts_test.yaml), reads only series the code
exports, and says what to do (here and in docs/operations.md); the Prometheus
configurations load."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.observability.metric_names import exported, used
from tests.observability.promtool import needs_promtool, promtool

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
RULES = PROMETHEUS / "alerts.yaml"
UNIT_TESTS = PROMETHEUS / "alerts_test.yaml"


def alerts() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def test_each_alert_has_a_duration_a_severity_and_a_runbook():
    found = alerts()
    assert len(found) == 14 and len({a["alert"] for a in found}) == 14
    for alert in found:
        assert re.fullmatch(r"\d+m", alert["for"]), alert["alert"]
        assert alert["labels"]["severity"] in ("warning", "critical"), alert["alert"]
        assert set(alert["annotations"]) == {"summary", "description"}, alert["alert"]
        assert len(alert["annotations"]["description"]) > 80, alert["alert"]


def test_the_alerts_read_only_series_the_code_exports():
    unknown = {(a["alert"], name) for a in alerts() for name in used(a["expr"]) if name not in exported()}
    assert unknown == set()


def test_each_alert_is_tested_firing_and_quiet():
    cases = [case for test in yaml.safe_load(UNIT_TESTS.read_text())["tests"] for case in test["alert_rule_test"]]
    for alert in alerts():
        mine = [c for c in cases if c["alertname"] == alert["alert"]]
        assert any(c["exp_alerts"] for c in mine), f"{alert['alert']} is never tested firing"
        assert any(not c["exp_alerts"] for c in mine), f"{alert['alert']} is never tested quiet"


def test_the_docs_say_what_to_do_for_each_alert():
    text = (ROOT / "docs" / "operations.md").read_text()
    section = text[text.index("## When an alert fires") :]
    section = section[: section.index("\n## ", 4)] if "\n## " in section[4:] else section
    for alert in alerts():
        assert f"`{alert['alert']}`" in section, alert["alert"]


@needs_promtool
def test_promtool_accepts_the_rules():
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 14 rules found" in result.stdout


@needs_promtool
def test_promtool_unit_tests_of_the_alerts_pass():
    result = promtool("test", "rules", UNIT_TESTS.name, cwd=PROMETHEUS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@needs_promtool
@pytest.mark.parametrize("config", ["prometheus-local.yml", "prometheus.yml"])
def test_promtool_accepts_the_prometheus_configurations(config):
    result = promtool("check", "config", config, cwd=PROMETHEUS)
    output = result.stdout + result.stderr
    if "field kubernetes_sd_configs not found" in output:  # Debian builds promtool without it
        pytest.skip("this promtool was built without Kubernetes service discovery (Debian's package)")
    assert result.returncode == 0, output
    assert "SUCCESS: 1 rule files found" in output
