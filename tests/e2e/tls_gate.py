"""The gatekeeper serving HTTPS (gatekeeper.tls), for clients that insist on it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from gatekeeper.tls import SHUTDOWN_TIMEOUT_SECONDS, ensure_local_certificates
from tests.fixtures.gate import Gate, make_settings, start_gatekeeper

# Once the listener has closed, a TLS connection whose client stays silent (an idle pooled
# connection sends no close_notify) is closed after the shutdown timeout.
CLOSE_WITHIN_SECONDS = SHUTDOWN_TIMEOUT_SECONDS + 3.0


@dataclass
class TlsGate:
    """A gatekeeper whose proxy listener serves HTTPS, and the authority to trust for it."""

    gate: Gate
    authority: Path


def open_proxy_connections(gate: Gate) -> float:
    for family in gate.metrics.client_connections.collect():
        for sample in family.samples:
            if sample.labels.get("listener") == "proxy":
                return sample.value
    return 0.0


async def proxy_connections_closed(gate: Gate) -> None:
    """Wait until every client connection of the proxy listener is closed: the test's event
    loop must not end while a TLS connection is still closing (its socket would leak)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CLOSE_WITHIN_SECONDS
    while open_proxy_connections(gate) > 0:
        if loop.time() > deadline:
            raise AssertionError("a proxy connection was still open after the listener closed")
        await asyncio.sleep(0.01)


@asynccontextmanager
async def start_tls_gatekeeper(
    upstream_url: str, database_url: str, redis_url: str, directory: Path
) -> AsyncIterator[TlsGate]:
    """The gatekeeper in front of ``upstream_url``, its proxy on HTTPS with a certificate
    from a local certificate authority made in ``directory`` (as ``gatekeeper demo --tls``)."""
    files = ensure_local_certificates(directory)
    settings = make_settings(
        upstream_url, database_url, redis_url, tls_certificate=files.certificate, tls_key=files.key
    )
    async with start_gatekeeper(settings) as gate:
        yield TlsGate(gate, files.authority)
    await proxy_connections_closed(gate)
