"""The shipped deployment files name metrics that exist, and the systemd unit gives the
process the file descriptors its connection limits need."""

from __future__ import annotations

import json
import re
from pathlib import Path

from gatekeeper.metrics import Metrics
from gatekeeper.settings import ProxySettings
from gatekeeper.web.connections import RESERVED_FDS

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
