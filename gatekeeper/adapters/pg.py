"""Typing for the data-access modules: a connection, pooled or not."""

from __future__ import annotations

from typing import Any, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

# What the query functions take: a plain connection (CLI, migrations) or a pool's proxy.
Conn: TypeAlias = "asyncpg.Connection[Any] | PoolConnectionProxy[Any]"
