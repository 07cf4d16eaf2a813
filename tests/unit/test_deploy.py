"""The shipped deployment files name metrics that exist."""

from __future__ import annotations

import json
import re
from pathlib import Path

from gatekeeper.metrics import Metrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def exported_names() -> set[str]:
    names: set[str] = set()
    for family in Metrics.create().registry.collect():
        # Labelled metrics have no samples until used: name them from the family.
        names.add(f"{family.name}_total" if family.type == "counter" else family.name)
    return names


def test_alert_rules_use_exported_metrics() -> None:
    rules = (DEPLOY / "prometheus" / "alerts.yml").read_text()
    used = set(re.findall(r"\bgatekeeper_[a-z_]+", rules))
    assert used, "the alert rules should use gatekeeper metrics"
    assert used <= exported_names()


def test_grafana_dashboard_queries_use_exported_metrics() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "gatekeeper.json").read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    used = {
        re.sub(r"_(bucket|sum|count)$", "", name)
        for expression in expressions
        for name in re.findall(r"\bgatekeeper_[a-z_]+", expression)
    }
    assert len(used) >= 8
    assert used <= exported_names()
