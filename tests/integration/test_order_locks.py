"""The order path's session locks (sql/0031): the account lock and the forwarding locks are
held by a decision's connection only until its order was sent (or refused), whatever the
answer, and no connection goes back to the pool holding one."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg

from tests.fixtures.orders import Bot, order, protect

_HELD = (
    "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
    " WHERE l.locktype = 'advisory' AND a.datname = current_database()"
    " AND l.pid <> pg_backend_pid()"
)


async def _no_advisory_locks(pool: asyncpg.Pool, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while (held := await pool.fetchval(_HELD)) != 0:
        assert time.monotonic() < deadline, f"{held} advisory locks still held"
        await asyncio.sleep(0.02)


async def test_every_answer_lets_the_locks_go(
    bot: Bot, pg_pool: asyncpg.Pool, paper_broker: Any
) -> None:
    await protect(pg_pool, bot.account, max_daily_trades=3)
    same = order("AAPL", 1, "150.00", **{"external-identifier": "bot-1"})
    answers = [
        await bot.place(same),  # allowed, forwarded
        await bot.place(same),  # a retry: duplicate_order
        await bot.place(order("AAPL", 100000, "150.00")),  # rejected by the rules
        await bot.place(order("AAPL", 1, "150.00"), dry_run=True),  # takes no lock
    ]
    paper_broker.book.add_fault(f"/accounts/{bot.account}/orders", status=500, method="POST")
    answers.append(await bot.place(order("AAPL", 1, "150.00")))  # forwarded, broker 5xx
    assert [a.status for a in answers] == [201, 201, 422, 201, 500]
    await _no_advisory_locks(pg_pool)
    # A stop is not kept waiting by anything left over.
    async with pg_pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL lock_timeout = '1s'")
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('gatekeeper.forwarding:' || $1, 0)),"
            " pg_advisory_xact_lock(hashtextextended('gatekeeper.forwarding:*', 0)),"
            " pg_advisory_xact_lock(hashtextextended('gatekeeper.account:' || $1, 0))",
            bot.account,
        )
