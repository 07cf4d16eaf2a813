"""The connection limits of a listener and the answer of a connection beyond them.

Beyond ``max_client_connections`` open connections, or ``max_client_connections_per_address``
from one address, a new connection serves one request, answered 503 in TastyTrade's envelope
without running its handler, and is closed (gatekeeper.web.connections). The request is read
(aiohttp parses it, the body is drained) so that the answer goes to what was asked: on an
order route it is a refusal with its decision row, as every answer there has
(:data:`gatekeeper.web.keys.RECORD_REFUSAL`). A refused connection has
``REFUSAL_LINGER_SECONDS`` for all of it, and at most ``MAX_LINGERING_REFUSALS`` wait at once
(more are closed unanswered). The total is capped below the process's file-descriptor limit.
"""

from __future__ import annotations

import logging
import resource
from dataclasses import dataclass

from aiohttp import web

from gatekeeper.errors import (
    GatekeeperError,
    TooManyConnections,
    TooManyConnectionsFromAddress,
    error_response,
)
from gatekeeper.settings import ProxySettings
from gatekeeper.web import keys

log = logging.getLogger(__name__)

# File descriptors kept for everything but client connections: Postgres, Redis, the
# listening sockets, log files, the interpreter's own, refused connections still lingering.
RESERVED_FDS = 256
# A refused connection has this long to send its request and read the 503 before it is
# closed; beyond MAX_LINGERING_REFUSALS such connections per listener, new ones are closed at
# once. Up to MAX_DRAINED_BYTES of its body are read and dropped, so that closing it does
# not reset the connection before the client has read the answer.
REFUSAL_LINGER_SECONDS = 1.0
MAX_LINGERING_REFUSALS = 64
MAX_DRAINED_BYTES = 1024**2


@dataclass(frozen=True)
class ConnectionLimits:
    """Deadlines and connection limits of one listener."""

    head_timeout: float
    body_timeout: float
    max_total: int
    max_per_address: int


def connection_limits(proxy: ProxySettings, listeners: int = 2) -> ConnectionLimits:
    """The configured limits, the total capped so that ``listeners`` listeners full of
    connections still leave file descriptors for the broker pools and the backends."""
    total = proxy.max_client_connections
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY:
        upstream = proxy.max_connections + proxy.order_max_connections
        budget = max(1, (soft - upstream - RESERVED_FDS) // listeners)
        if budget < total:
            log.info(
                "client connections limited to %d per listener by the file-descriptor limit"
                " (%d); raise it (systemd: LimitNOFILE) for the configured %d",
                budget,
                soft,
                total,
            )
            total = budget
    return ConnectionLimits(
        head_timeout=proxy.request_head_timeout_seconds,
        body_timeout=proxy.request_body_timeout_seconds,
        max_total=total,
        max_per_address=min(proxy.max_client_connections_per_address, total),
    )


TOO_MANY_CONNECTIONS = TooManyConnections.code
TOO_MANY_FROM_ADDRESS = TooManyConnectionsFromAddress.code


def refusal_error(reason: str) -> GatekeeperError:
    """The 503 of a request on a connection refused for ``reason``."""
    if reason == TOO_MANY_FROM_ADDRESS:
        return TooManyConnectionsFromAddress(
            "Too many open connections from your address; reuse connections or try again later."
        )
    return TooManyConnections("The gatekeeper has too many open connections; try again later.")


async def refusal_answer(request: web.Request, error: GatekeeperError) -> web.StreamResponse:
    """The answer to the one request of a refused connection: its handler does not run; an
    order route's refusal is recorded (the proxy listener's RECORD_REFUSAL)."""
    drained = 0
    try:
        async for chunk in request.content.iter_chunked(64 * 1024):
            drained += len(chunk)
            if drained > MAX_DRAINED_BYTES:
                break
    except OSError:  # the client went (ConnectionResetError), or its linger time ran out
        pass
    record = request.app.get(keys.RECORD_REFUSAL)
    response = await record(request, error) if record is not None else None
    if response is None:
        response = error_response(error)
    response.headers["Retry-After"] = "1"
    return response
