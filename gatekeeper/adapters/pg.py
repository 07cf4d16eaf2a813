"""Typing for the data-access modules: a connection, pooled or not."""

from __future__ import annotations

from typing import Any, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

# What the query functions take: a plain connection (CLI, migrations) or a pool's proxy.
Conn: TypeAlias = "asyncpg.Connection[Any] | PoolConnectionProxy[Any]"

# What a Postgres outage raises (refused, reset, timed out, shut down by an operator): the
# order path answers 503 database_unavailable and background jobs retry later. asyncpg's
# InternalClientError too: a fast shutdown can leave a pooled connection half-way through an
# error, and the next query on it raises that instead of a connection error.
DB_DOWN: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InternalClientError,
)
