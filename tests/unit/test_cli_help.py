"""Every command's --help renders (argparse formats help strings with %, so a bare % in one
crashes the command's help)."""

from __future__ import annotations

import argparse

import pytest

from gatekeeper.cli import build_parser


def _parsers() -> dict[str, argparse.ArgumentParser]:
    found: dict[str, argparse.ArgumentParser] = {}

    def walk(name: str, parser: argparse.ArgumentParser) -> None:
        found[name] = parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for child, sub in action.choices.items():
                    walk(f"{name} {child}", sub)

    walk("gatekeeper", build_parser())
    return found


PARSERS = _parsers()


def test_every_command_is_found() -> None:
    assert {"gatekeeper protections set", "gatekeeper decisions"} <= set(PARSERS)


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_help_renders(name: str) -> None:
    text = PARSERS[name].format_help()
    assert text.startswith("usage:")
