"""Fixtures of the client-library tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.e2e.tls_gate import TlsGate, start_tls_gatekeeper
from tests.fixtures.paper import PaperBroker


@pytest.fixture
async def tls_gatekeeper(
    paper_broker: PaperBroker, database_url: str, redis_url: str, tmp_path: Path
) -> AsyncIterator[TlsGate]:
    """The gatekeeper in front of the paper broker, its proxy on HTTPS."""
    async with start_tls_gatekeeper(
        paper_broker.url, database_url, redis_url, tmp_path / "tls"
    ) as tls_gate:
        yield tls_gate
