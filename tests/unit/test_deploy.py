"""The shipped deployment files name metrics that exist, and the systemd unit gives the
process the file descriptors its connection limits need. The compose, Kubernetes and image
files: tests/unit/test_deploy_files.py; run for real: tests/unit/test_deploy_runtime.py."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from gatekeeper.metrics import Metrics
from gatekeeper.settings import ProxySettings
from gatekeeper.web.connection_limits import RESERVED_FDS

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


DASHBOARDS = ("gatekeeper.json", "gatekeeper-accounts.json")


def dashboard_expressions(dashboard: dict[str, Any]) -> list[str]:
    """Every query of a dashboard: its panels', those inside rows, its variables'."""
    panels = list(dashboard["panels"])
    expressions = []
    while panels:
        panel = panels.pop()
        panels.extend(panel.get("panels", ()))
        expressions += [target["expr"] for target in panel.get("targets", ())]
    for variable in dashboard.get("templating", {}).get("list", ()):
        query = variable.get("query")
        if variable.get("type") == "query":
            expressions.append(query["query"] if isinstance(query, dict) else query)
    return expressions


def dashboard_metric_names() -> dict[str, set[str]]:
    """The gatekeeper metric names each shipped dashboard queries (histogram suffixes off)."""
    names = {}
    for file in DASHBOARDS:
        dashboard = json.loads((DEPLOY / "grafana" / file).read_text())
        names[file] = {
            re.sub(r"_(bucket|sum|count)$", "", name)
            for expression in dashboard_expressions(dashboard)
            for name in re.findall(r"\bgatekeeper_[a-z_]+", expression)
        }
    return names


def test_grafana_dashboard_queries_use_exported_metrics() -> None:
    used = dashboard_metric_names()
    assert len(used["gatekeeper.json"]) >= 8
    for file, names in used.items():
        assert names <= exported_names(), file


def test_account_dashboard_shows_each_limit_per_account() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "gatekeeper-accounts.json").read_text())
    variables = {item["name"]: item for item in dashboard["templating"]["list"]}
    assert "label_values(gatekeeper_emergency_stop_active, account)" in str(variables["account"])
    (row,) = [panel for panel in dashboard["panels"] if panel["type"] == "row"]
    assert row["repeat"] == "account"
    gauges = [panel for panel in dashboard["panels"] if panel["type"] == "gauge"]
    assert gauges, "the utilisation gauges"
    for gauge in gauges:
        (target,) = gauge["targets"]
        assert "gatekeeper_limit_utilisation_ratio" in target["expr"]
        assert 'account=~"$account"' in target["expr"]
        assert target["legendFormat"] == "{{limit}}"
        steps = gauge["fieldConfig"]["defaults"]["thresholds"]["steps"]
        # The alert threshold (GatekeeperLimitNearlyReached, 80 %) and the limit itself.
        assert [step["value"] for step in steps] == [None, 0.8, 1]
    names = dashboard_metric_names()["gatekeeper-accounts.json"]
    assert {
        "gatekeeper_emergency_stop_active",
        "gatekeeper_limit_utilisation_ratio",
        "gatekeeper_trades_today",
        "gatekeeper_daily_trades_limit",
        "gatekeeper_day_pnl_ratio",
        "gatekeeper_cash_reserve_headroom_ratio",
    } <= names


def test_systemd_unit_raises_the_file_descriptor_limit() -> None:
    unit = (DEPLOY / "systemd" / "gatekeeper.service").read_text()
    limits = re.findall(r"^LimitNOFILE=(\d+)$", unit, flags=re.MULTILINE)
    assert len(limits) == 1, "the unit should set LimitNOFILE once"
    proxy = ProxySettings()
    # Both listeners full, the broker pools and the backends: the default limits fit.
    needed = (
        2 * proxy.max_client_connections
        + proxy.max_connections
        + proxy.order_max_connections
        + RESERVED_FDS
    )
    assert int(limits[0]) >= needed


def test_dashboard_and_alerts_show_the_state_per_account() -> None:
    dashboard = (DEPLOY / "grafana" / "gatekeeper.json").read_text()
    rules = (DEPLOY / "prometheus" / "alerts.yml").read_text()
    for name in (
        "gatekeeper_emergency_stop_active",
        "gatekeeper_global_emergency_stop_active",
        "gatekeeper_limit_utilisation_ratio",
        "gatekeeper_decisions_total",
    ):
        assert name in dashboard
        assert name in rules
    for name in ("gatekeeper_trades_today", "gatekeeper_day_pnl_ratio"):
        assert name in dashboard
    # Decisions by verdict count orders, not violations (one rejection, several codes).
    assert "sum by (verdict) (rate(gatekeeper_risk_decisions_total" not in dashboard
