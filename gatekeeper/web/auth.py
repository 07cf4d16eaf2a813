"""Authentication and authorisation of admin API calls.

Only our own tokens (``Authorization: Bearer gk_...``, from ``gatekeeper tokens create``)
are accepted; a bot's TastyTrade session token grants nothing here. The presented token is
never logged, counted or echoed.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg
from aiohttp import web

from gatekeeper.adapters.pg import Conn
from gatekeeper.adapters.users import authenticate
from gatekeeper.auth import (
    Permission,
    Principal,
    TokenMalformed,
    TokenMissing,
    looks_like_token,
)
from gatekeeper.errors import DatabaseUnavailable, Forbidden, Unauthorized
from gatekeeper.web import keys

log = logging.getLogger(__name__)

# An operator's call waits this long for a database connection, then gets a 503.
ACQUIRE_TIMEOUT = 5.0


@dataclass(frozen=True)
class Call:
    """One authorised admin API call: the request, who made it, and a database connection."""

    request: web.Request
    principal: Principal
    conn: Conn


ApiHandler = Callable[[Call], Awaitable[web.StreamResponse]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def bearer_token(request: web.Request) -> str:
    """The token in the Authorization header (shape checked, validity not)."""
    headers = request.headers.getall("Authorization", [])
    if not headers:
        raise TokenMissing("missing Authorization header: use 'Authorization: Bearer <token>'")
    scheme, _, token = headers[0].strip().partition(" ")
    token = token.strip()
    if len(headers) != 1 or scheme.lower() != "bearer" or not looks_like_token(token):
        raise TokenMalformed(
            "malformed Authorization header: expected 'Bearer gk_<64 hex digits>'"
            " (a TastyTrade session token is not an admin token)"
        )
    return token


def guarded(permission: Permission, handler: ApiHandler) -> Handler:
    """``handler`` behind authentication and the role check for ``permission``."""

    async def guarded_handler(request: web.Request) -> web.StreamResponse:
        metrics = request.app[keys.METRICS]
        try:
            token = bearer_token(request)
            try:
                async with request.app[keys.PG_POOL].acquire(timeout=ACQUIRE_TIMEOUT) as conn:
                    principal = await authenticate(conn, token)
                    principal.require(permission)
                    return await handler(Call(request, principal, conn))
            except (
                OSError,
                TimeoutError,
                asyncpg.InterfaceError,
                asyncpg.PostgresConnectionError,
            ) as error:
                log.warning("admin API: database unavailable (%s)", type(error).__name__)
                raise DatabaseUnavailable("the database is unavailable; try again") from None
        except (Unauthorized, Forbidden) as error:
            metrics.admin_auth_failures.labels(reason=error.code).inc()
            raise

    return guarded_handler
