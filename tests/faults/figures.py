"""Figures the fault scenarios measure, printed as one markdown table at the end of the run
(``tests/faults/conftest.py``) and written to ``<basetemp>/fault-figures.md``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    scenario: str
    result: str
    figure: str


FIGURES: list[Figure] = []


def record(scenario: str, result: str, figure: str) -> None:
    """Note a scenario's outcome and its measured figure for the closing table."""
    FIGURES.append(Figure(scenario, result, figure))


def table() -> str:
    """The figures recorded so far as a markdown table (empty when there are none)."""
    if not FIGURES:
        return ""
    lines = ["| scenario | result | figure |", "|---|---|---|"]
    lines.extend(f"| {f.scenario} | {f.result} | {f.figure} |" for f in FIGURES)
    return "\n".join(lines)
