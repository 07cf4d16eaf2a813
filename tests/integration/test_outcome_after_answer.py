"""Issue 12, item 3: a forwarded order's outcome row is written after the broker's answer is
relayed (gatekeeper.orderpath.outcome_writes), and that keeps every promise: the account's
next decision waits for the row (a broker's refusal does not count against it, a retry is
answered with the first answer), and a gatekeeper that stops writes the rows it owes first.

The row is held back by a test transaction that keeps ``order_outcomes`` locked in SHARE
mode: reads go on, every INSERT into it waits; no other table of the order path is locked.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import asyncpg

from tests.fixtures.gate import make_settings, start_gatekeeper
from tests.fixtures.orders import Bot, order, outcome_row, protect, received_count

_OUTCOMES = "SELECT count(*) FROM order_outcomes WHERE decision_id = $1::uuid"


@asynccontextmanager
async def outcomes_held_back(database_url: str) -> AsyncIterator[None]:
    """Every INSERT into order_outcomes waits while this is open."""
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            await conn.execute("LOCK TABLE order_outcomes IN SHARE MODE")
            yield
    finally:
        await conn.close()


async def test_the_answer_does_not_wait_for_the_outcome_row(
    bot: Bot, pg_pool: asyncpg.Pool, paper_broker: Any, database_url: str
) -> None:
    await protect(pg_pool, bot.account)
    async with outcomes_held_back(database_url):
        placed = await asyncio.wait_for(bot.place(order("AAPL", 1, "150.00")), 5.0)
        assert placed.status == 201, placed.body
        decision_id = placed.headers["X-Gatekeeper-Decision-Id"]
        await asyncio.sleep(0.3)
        assert await pg_pool.fetchval(_OUTCOMES, decision_id) == 0  # still on its way
    row = await outcome_row(pg_pool, decision_id)
    assert row["outcome"] == "accepted"
    assert row["broker_order_id"] == str(placed.body["data"]["order"]["id"])


async def test_the_next_decision_waits_for_a_refusal_s_row_so_it_does_not_count(
    bot: Bot, pg_pool: asyncpg.Pool, paper_broker: Any, database_url: str
) -> None:
    """One trade a day; the broker refuses the first order (400): the bot's next order, sent
    at once, is decided only after that refusal is recorded, so the refusal does not count."""
    await protect(pg_pool, bot.account, max_daily_trades=1)
    paper_broker.book.add_fault(
        f"/accounts/{bot.account}/orders", status=400, method="POST", times=1
    )
    async with outcomes_held_back(database_url):
        refused = await bot.place(order("AAPL", 1, "150.00"))
        assert refused.status == 400
        following = asyncio.ensure_future(bot.place(order("AAPL", 1, "150.00")))
        await asyncio.sleep(0.5)
        assert not following.done()  # waiting for the refusal's row
        decided = await pg_pool.fetchval("SELECT count(*) FROM risk_decisions")
        assert decided == 1
    again = await asyncio.wait_for(following, 5.0)
    assert again.status == 201, again.body  # the refusal did not count
    assert received_count(paper_broker.book, bot.account) == 1
    row = await outcome_row(pg_pool, refused.headers["X-Gatekeeper-Decision-Id"])
    assert (row["outcome"], row["http_status"]) == ("broker_rejected", 400)


async def test_a_retry_right_after_the_answer_gets_the_first_answer(
    bot: Bot, pg_pool: asyncpg.Pool, paper_broker: Any, database_url: str
) -> None:
    await protect(pg_pool, bot.account)
    same = order("AAPL", 1, "150.00", **{"external-identifier": "bot-retry-1"})
    async with outcomes_held_back(database_url):
        first = await bot.place(same)
        assert first.status == 201, first.body
        retry = asyncio.ensure_future(bot.place(same))
        await asyncio.sleep(0.3)
        assert not retry.done()
    again = await asyncio.wait_for(retry, 5.0)
    assert again.status == 201  # the first's answer, not forwarded again
    assert again.body == first.body
    assert again.headers["X-Gatekeeper-Duplicate-Of"] == first.headers["X-Gatekeeper-Decision-Id"]
    assert received_count(paper_broker.book, bot.account) == 1


async def test_a_stopping_gatekeeper_writes_the_rows_it_owes(
    paper_broker: Any,
    paper_auth: dict[str, str],
    pg_pool: asyncpg.Pool,
    database_url: str,
    redis_url: str,
) -> None:
    """The rows still being written when the gatekeeper is told to stop are written before it
    stops (its engine waits for them; so does the database pool, for the connection holding
    the order's locks)."""
    await protect(pg_pool, paper_broker.account_number)
    settings = make_settings(paper_broker.url, database_url, redis_url)
    held = outcomes_held_back(database_url)
    await held.__aenter__()
    try:
        gate_context = start_gatekeeper(settings)
        gate = await gate_context.__aenter__()
        async with aiohttp.ClientSession() as session:
            bot = Bot(gate.proxy_url, paper_auth, session, paper_broker.account_number)
            placed = await bot.place(order("AAPL", 1, "150.00"))
        assert placed.status == 201, placed.body
        stopping = asyncio.ensure_future(gate_context.__aexit__(None, None, None))
        await asyncio.sleep(0.5)
        assert not stopping.done()  # waits for the row
    finally:
        await held.__aexit__(None, None, None)
    await asyncio.wait_for(stopping, 10.0)
    decision_id = placed.headers["X-Gatekeeper-Decision-Id"]
    assert await pg_pool.fetchval(_OUTCOMES, decision_id) == 1  # written before it stopped
