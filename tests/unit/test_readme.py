"""The README's two set-up commands are the ones CI runs and the ones that exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```(?:bash|sh)\n(.+?)\n```", section, flags=re.DOTALL)


def test_readme_shows_exactly_two_setup_commands() -> None:
    commands = readme_commands()
    assert len(commands) == 2
    assert all("\n" not in command for command in commands)
    assert commands[0].endswith("gatekeeper demo")


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert readme_commands()[1] in ci
    assert "set -euo pipefail" in ci


def test_readme_operating_section_names_the_stop_alert_and_check_commands() -> None:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Operating it", 1)[1].split("\n## ", 1)[0]
    for words in (
        "`gatekeeper stop ACCOUNT",
        "`gatekeeper stop --all",
        "`gatekeeper clear ACCOUNT --confirm`",
        "`gatekeeper clear --all --confirm`",
        "`gatekeeper check`",
        "--send-test-alert",
    ):
        assert words in section, words
    links = set(re.findall(r"\]\((docs/[a-z-]+\.md)(?:#[a-z0-9-]+)?\)", section))
    assert {"docs/admin.md", "docs/alerts.md"} <= links
    assert all((ROOT / link).is_file() for link in links)
