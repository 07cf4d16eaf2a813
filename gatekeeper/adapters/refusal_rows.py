"""The rows of requests the order path refused without a rule verdict (overloaded, past their
deadline, unreadable, a backend down, beyond the connection limits), appended in batches on a
connection of their own.

Refusals come when the gatekeeper is busiest. Every pooled connection may be held by an order
waiting for the broker's answer (each keeps its own until the order was sent: sql/0031), and a
flood of refused requests would take one connection per row from the orders being decided.
So one writer per process appends them, on its own connection: whatever is waiting when it is
free goes in one INSERT and one commit (group commit), rows in account order, so that batches
of two replicas lock the accounts' chain heads (sql/0028) in the same order. A batch that
fails for one row's sake (a constraint) is written again row by row, so that row fails alone.
Each caller waits for its own row's commit, ``wait_at_most`` seconds at most.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import asdict, dataclass
from typing import Any
from uuid import UUID

import asyncpg
import orjson

from gatekeeper.adapters.pg import DB_DOWN

log = logging.getLogger(__name__)

# Rows per INSERT at most (a flood's rows go in several).
MAX_BATCH = 500
# How long a caller that gives no bound waits for its row (several batches, each bounded by
# the connection's timeouts below).
DEFAULT_WAIT_SECONDS = 10.0
_CONNECT_TIMEOUT = 5.0
_COMMAND_TIMEOUT = 5.0

# The day is the database's New York date, as every other decision row's (its transaction's
# now(), the same for the whole batch).
_INSERT = """
INSERT INTO risk_decisions
    (decision_id, account_id, route_kind, verdict, codes, notes, message, detail,
     trading_day, trade_count, reserved_orders, replaces_order_id, latency_ms)
SELECT r.decision_id, r.account_id, r.route_kind, r.verdict, r.codes, '{}'::text[], r.message,
       r.detail, (now() AT TIME ZONE 'America/New_York')::date, 0, '[]'::jsonb,
       r.replaces_order_id, r.latency_ms
FROM jsonb_to_recordset($1::jsonb) AS r(
    n integer, decision_id uuid, account_id text, route_kind text, verdict text, codes text[],
    message text, detail jsonb, replaces_order_id text, latency_ms numeric)
ORDER BY r.account_id, r.n
"""


@dataclass(frozen=True)
class RefusalRow:
    """The decision row of a refused request: it reserves nothing."""

    decision_id: UUID
    account_id: str
    route_kind: str
    verdict: str  # reject (the request is at fault) | error (we are)
    codes: list[str]
    message: str
    detail: dict[str, Any]
    replaces_order_id: str | None
    latency_ms: float


class RefusalRows:
    """The writer of one process (see the module docstring)."""

    def __init__(self, database_url: str) -> None:
        self._database_url = database_url
        self._pool: asyncpg.Pool | None = None
        self._waiting: list[tuple[dict[str, Any], asyncio.Future[bool]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._closed = False

    async def append(self, row: RefusalRow, *, wait_at_most: float | None = None) -> bool:
        """Append ``row``; whether it was committed within ``wait_at_most`` seconds (False:
        Postgres failed or took longer; the row may still be committed later)."""
        if self._closed:
            return False
        fields = asdict(row)
        fields["decision_id"] = str(row.decision_id)
        fields["latency_ms"] = round(row.latency_ms, 3)
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._waiting.append((fields, future))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write(), name="gatekeeper-refusal-rows")
        try:
            async with asyncio.timeout(
                DEFAULT_WAIT_SECONDS if wait_at_most is None else wait_at_most
            ):
                return await asyncio.shield(future)
        except TimeoutError:
            return False

    async def aclose(self) -> None:
        """Write what waits, then close the connection (at shutdown)."""
        self._closed = True
        if self._writer is not None:
            with contextlib.suppress(Exception):
                await self._writer
        if self._pool is not None:
            await self._pool.close()

    async def _write(self) -> None:
        batch: list[tuple[dict[str, Any], asyncio.Future[bool]]] = []
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
                for n, (fields, _) in enumerate(batch):
                    fields["n"] = n
                written = await self._insert([fields for fields, _ in batch])
                for (_, future), ok in zip(batch, written, strict=True):
                    if not future.done():
                        future.set_result(ok)
                batch = []
        finally:
            self._writer = None
            for _, future in batch:  # cancelled or failed mid-batch: not known to be written
                if not future.done():
                    future.set_result(False)

    async def _insert(self, rows: list[dict[str, Any]]) -> list[bool]:
        try:
            async with (await self._connections()).acquire() as conn:
                try:
                    await conn.execute(_INSERT, orjson.dumps(rows).decode())
                    return [True] * len(rows)
                except DB_DOWN:
                    raise
                except asyncpg.PostgresError as error:
                    if len(rows) == 1:
                        log.error("refusal row not recorded: %s", type(error).__name__)
                        return [False]
                    # One row at fault (or a deadlock with another writer): each on its own.
                    return [await self._one(conn, row) for row in rows]
        except DB_DOWN:
            return [False] * len(rows)

    async def _one(self, conn: Any, row: dict[str, Any]) -> bool:
        try:
            await conn.execute(_INSERT, orjson.dumps([row]).decode())
        except DB_DOWN:
            raise
        except asyncpg.PostgresError as error:
            log.error("refusal row not recorded: %s", type(error).__name__)
            return False
        return True

    async def _connections(self) -> asyncpg.Pool:
        if self._pool is None:
            self._pool = asyncpg.create_pool(
                self._database_url,
                min_size=0,
                max_size=1,
                timeout=_CONNECT_TIMEOUT,
                command_timeout=_COMMAND_TIMEOUT,
            )
            await self._pool
        return self._pool
