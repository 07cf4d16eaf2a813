"""Fixtures of the fault suite: ``faults``, one scenario's world (``tests/faults/stack.py``),
and the figures table at the end of the run."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from gatekeeper.embedded import EmbeddedPostgres, EmbeddedRedis
from tests.faults.figures import table
from tests.faults.stack import FaultStack, fault_stack
from tests.fixtures.paper import PaperBroker


@pytest.fixture
async def faults(
    paper_broker: PaperBroker,
    paper_auth: dict[str, str],
    private_postgres: EmbeddedPostgres,
    private_redis: EmbeddedRedis,
    tmp_path: Path,
) -> AsyncIterator[FaultStack]:
    """Private Postgres and Redis and the paper broker, each behind a fault proxy."""
    async with fault_stack(
        paper_broker, paper_auth, private_postgres, private_redis, tmp_path
    ) as stack:
        yield stack


@pytest.fixture(scope="session", autouse=True)
def _figures_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    yield
    text = table()
    if text:
        (tmp_path_factory.getbasetemp() / "fault-figures.md").write_text(text + "\n")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The figures the scenarios measured, as the closing note's markdown table."""
    text = table()
    if text:
        terminalreporter.section("fault suite figures")
        for line in text.splitlines():
            terminalreporter.write_line(line)
