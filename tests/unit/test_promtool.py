"""The shipped alert rules are valid and behave as their tests say (``promtool``, from
Debian's ``prometheus`` package; skipped, saying why, where it is not installed)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

PROMETHEUS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        reason = "promtool not found on PATH (Debian: apt-get install prometheus)"
        print(f"SKIPPED: {reason}")
        pytest.skip(reason)
    return found


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_promtool(), *args],
        cwd=PROMETHEUS,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_alert_rules_are_valid() -> None:
    result = _run("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_pass_their_tests() -> None:
    # Among them: a system-triggered stop fires GatekeeperEmergencyStop naming the account.
    result = _run("test", "rules", "alerts_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_prometheus_config_is_valid() -> None:
    # deploy/compose.yaml's Prometheus: both replicas scraped, alerts.yml loaded.
    result = _run("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
