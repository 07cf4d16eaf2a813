"""The systemd units: migrations as the database's owner role, serving as the application role
(two environment files, two units), and both units valid for systemd itself."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SYSTEMD = Path(__file__).resolve().parents[2] / "deploy" / "systemd"


def settings_of(unit: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in (SYSTEMD / unit).read_text().splitlines():
        match = re.match(r"^(\w+)=(.*)$", line)
        if match:
            found.setdefault(match[1], []).append(match[2])
    return found


def test_the_service_serves_and_leaves_migrations_to_their_own_unit() -> None:
    service = settings_of("gatekeeper.service")

    assert service["ExecStart"] == ["/opt/gatekeeper/.venv/bin/gatekeeper serve"]
    assert "ExecStartPre" not in service  # a migrate step here would run as the service's role
    assert service["Requires"] == ["gatekeeper-migrate.service"]
    assert "gatekeeper-migrate.service" in service["After"][0].split()


def test_migrations_run_once_with_the_owner_roles_url() -> None:
    migrate = settings_of("gatekeeper-migrate.service")
    service = settings_of("gatekeeper.service")

    assert migrate["Type"] == ["oneshot"]
    assert migrate["RemainAfterExit"] == ["true"]
    assert migrate["ExecStart"] == ["/opt/gatekeeper/.venv/bin/gatekeeper migrate"]
    assert migrate["EnvironmentFile"] == ["/etc/gatekeeper/migrate.env"]
    assert service["EnvironmentFile"] == ["/etc/gatekeeper/env"]
    assert migrate["Environment"] == service["Environment"]  # the same config file


def test_systemd_accepts_both_units(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    gatekeeper = Path(sys.executable).with_name("gatekeeper")
    for unit in ("gatekeeper.service", "gatekeeper-migrate.service"):
        text = (SYSTEMD / unit).read_text()
        (tmp_path / unit).write_text(
            text.replace("/opt/gatekeeper/.venv/bin/gatekeeper", str(gatekeeper))
        )

    result = subprocess.run(
        [analyze, "verify", "gatekeeper-migrate.service", "gatekeeper.service"],
        cwd=tmp_path, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr
