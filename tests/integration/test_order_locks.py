"""The order path's session locks (sql/0031): the account lock and the forwarding locks are
held by a decision's connection only until its order was sent (or refused), whatever the
answer, and no connection goes back to the pool holding one."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.fixtures.gate import make_settings, start_gatekeeper
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


async def test_an_outcome_the_reconciler_recorded_first_still_lets_the_locks_go(
    paper_broker: Any,
    paper_auth: dict[str, str],
    database_url: str,
    redis_url: str,
    pg_pool: asyncpg.Pool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The broker places the order and answers 1.5 s later; the reconciler finds it placed
    # first, so the answer's outcome row is refused (one answer per decision): the locks the
    # outcome's statement would have let go are let go on their own.
    account = paper_broker.account_number
    await protect(pg_pool, account)
    settings = make_settings(paper_broker.url, database_url, redis_url)
    risk = settings.risk.model_copy(
        update={"reconcile_interval_seconds": 0.1, "reconcile_grace_seconds": 0.3}
    )
    target = f"/accounts/{account}/orders"
    paper_broker.book.add_fault(target, delay_seconds=1.5, method="POST", times=1, after=True)
    with caplog.at_level(logging.WARNING, logger="gatekeeper.orderpath.record"):
        async with (
            start_gatekeeper(settings.model_copy(update={"risk": risk})) as gate,
            aiohttp.ClientSession() as session,
        ):
            bot = Bot(gate.proxy_url, paper_auth, session, account)
            answer = await bot.place(order("AAPL", 1, "150.00"))
            assert answer.status == 201, answer.body
            await _no_advisory_locks(pg_pool)
    decision_id = answer.headers["X-Gatekeeper-Decision-Id"]
    rows = await pg_pool.fetch(
        "SELECT outcome, resolution FROM order_outcomes WHERE decision_id = $1::uuid", decision_id
    )
    assert [(r["outcome"], r["resolution"] is not None) for r in rows] == [("accepted", True)]
    assert f"order outcome accepted for decision {decision_id} was already resolved" in caplog.text
