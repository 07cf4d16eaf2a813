"""A listener's side of the connection guard: its client connections counted, and each one
wrapped as it is accepted.

Each listener has one :class:`ConnectionGuard`, its protocol factory. It admits a new
connection or says why it is refused (beyond ``max_client_connections`` open connections, or
``max_client_connections_per_address`` from one address), keeps the listener's count of open
connections (``gatekeeper_client_connections``) and counts those refused or closed by a
deadline (``gatekeeper_client_connections_closed_total``, by reason). Each connection's
aiohttp protocol is wrapped in a :class:`~gatekeeper.web.connections.GuardedConnection`: the
deadlines, and the one 503 of a refused connection. At most ``MAX_LINGERING_REFUSALS`` refused
connections stay open at once to read that 503; those still open when the listener stops are
closed. :class:`GuardedSite` is the TCP listener that hands its guard to ``create_server``.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from aiohttp import web

from gatekeeper.metrics import Metrics
from gatekeeper.web.connection_limits import (
    MAX_LINGERING_REFUSALS,
    TOO_MANY_CONNECTIONS,
    TOO_MANY_FROM_ADDRESS,
    ConnectionLimits,
)
from gatekeeper.web.connections import GuardedConnection


class ConnectionGuard:
    """The protocol factory of one listener: counts its connections and wraps each accepted
    one's aiohttp protocol in a :class:`GuardedConnection`."""

    def __init__(
        self, server: web.Server, limits: ConnectionLimits, metrics: Metrics, listener: str
    ) -> None:
        self.server = server
        self.limits = limits
        self._metrics = metrics
        self._listener = listener
        self._per_address: Counter[str] = Counter()
        self._open = 0
        self._refused: set[GuardedConnection] = set()

    def __call__(self) -> GuardedConnection:
        return GuardedConnection(self)

    def admit(self, address: str) -> str | None:
        """Count a new connection from ``address``; or the reason it is refused."""
        if self._open >= self.limits.max_total:
            reason = TOO_MANY_CONNECTIONS
        elif self._per_address[address] >= self.limits.max_per_address:
            reason = TOO_MANY_FROM_ADDRESS
        else:
            self._open += 1
            self._per_address[address] += 1
            self._metrics.client_connections.labels(self._listener).set(self._open)
            return None
        self.count_closed(reason)
        return reason

    def release(self, address: str) -> None:
        self._open -= 1
        self._per_address[address] -= 1
        if self._per_address[address] <= 0:
            del self._per_address[address]
        self._metrics.client_connections.labels(self._listener).set(self._open)

    def count_closed(self, reason: str) -> None:
        self._metrics.client_connections_closed.labels(self._listener, reason).inc()

    def linger(self, connection: GuardedConnection) -> bool:
        """Whether a refused connection may stay open to read its 503."""
        if len(self._refused) >= MAX_LINGERING_REFUSALS:
            return False
        self._refused.add(connection)
        return True

    def forget(self, connection: GuardedConnection) -> None:
        self._refused.discard(connection)

    def close_refused(self) -> None:
        """Close the refused connections still lingering (the listener is stopping)."""
        for connection in list(self._refused):
            connection.abort()


class GuardedSite(web.BaseSite):
    """A TCP listener whose connections go through ``guard`` (aiohttp's TCPSite passes the
    runner's server to ``create_server`` as is)."""

    def __init__(
        self, runner: web.BaseRunner, guard: ConnectionGuard, host: str, port: int
    ) -> None:
        super().__init__(runner, backlog=1024)
        self._guard = guard
        self._host = host
        self._port = port

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._guard, self._host, self._port, backlog=self._backlog
        )

    async def stop(self) -> None:
        await super().stop()
        self._guard.close_refused()
