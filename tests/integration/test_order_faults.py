"""Fail closed: a backend or the broker's state down → the order is rejected with its own
code and nothing is forwarded, while pass-through reads keep working."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import pytest

from gatekeeper.embedded import EmbeddedPostgres, EmbeddedRedis
from tests.fixtures.gate import make_settings, start_gatekeeper
from tests.fixtures.orders import Bot, order, protect, received_count


@pytest.fixture
async def private_bot(
    paper_broker: Any,
    paper_auth: dict[str, str],
    private_postgres: EmbeddedPostgres,
    private_redis: EmbeddedRedis,
) -> AsyncIterator[Bot]:
    """A bot in front of a gatekeeper whose Postgres and Redis are the test's own."""
    pool = await asyncpg.create_pool(private_postgres.url, min_size=1, max_size=2)
    try:
        await protect(pool, paper_broker.account_number)
    finally:
        await pool.close()
    settings = make_settings(paper_broker.url, private_postgres.url, private_redis.url)
    async with start_gatekeeper(settings) as gate, aiohttp.ClientSession() as session:
        yield Bot(gate.proxy_url, paper_auth, session, paper_broker.account_number)


async def _assert_rejected_but_reads_pass(bot: Bot, book: Any, code: str, status: int) -> None:
    answer = await bot.place(order("AAPL", 1, "150.00"))
    assert answer.status == status, answer.body
    assert answer.body["error"]["code"] == code
    assert answer.codes == [code]
    assert answer.headers["X-Gatekeeper-Decision-Id"]
    assert received_count(book, bot.account) == 0
    balances = await bot.send("GET", f"/accounts/{bot.account}/balances")
    assert balances.status == 200
    assert balances.body["data"]["account-number"] == bot.account


async def test_postgres_stopped(
    private_bot: Bot, private_postgres: EmbeddedPostgres, paper_broker: Any
) -> None:
    assert (await private_bot.place(order("AAPL", 1, "150.00"))).status == 201
    paper_broker.book.clear_received_orders()
    await asyncio.to_thread(private_postgres.stop)
    await _assert_rejected_but_reads_pass(
        private_bot, paper_broker.book, "database_unavailable", 503
    )


async def test_postgres_paused(
    private_bot: Bot, private_postgres: EmbeddedPostgres, paper_broker: Any
) -> None:
    await asyncio.to_thread(private_postgres.pause)
    try:
        await _assert_rejected_but_reads_pass(
            private_bot, paper_broker.book, "database_unavailable", 503
        )
    finally:
        await asyncio.to_thread(private_postgres.resume)


async def test_redis_stopped(
    private_bot: Bot, private_redis: EmbeddedRedis, paper_broker: Any
) -> None:
    await asyncio.to_thread(private_redis.stop)
    await _assert_rejected_but_reads_pass(private_bot, paper_broker.book, "cache_unavailable", 503)


async def test_broker_state_endpoint_failing(private_bot: Bot, paper_broker: Any) -> None:
    paper_broker.book.add_fault(f"/accounts/{private_bot.account}/positions", status=500)
    answer = await private_bot.place(order("AAPL", 1, "150.00"))
    assert answer.status == 503
    assert answer.codes == ["state_unavailable"]
    assert received_count(paper_broker.book, private_bot.account) == 0
    assert (
        await private_bot.send("GET", f"/accounts/{private_bot.account}/balances")
    ).status == 200


async def test_cached_state_used_until_max_age_then_state_unavailable(
    paper_broker: Any,
    paper_auth: dict[str, str],
    database_url: str,
    redis_url: str,
    pg_pool: asyncpg.Pool,
) -> None:
    await protect(pg_pool, paper_broker.account_number)
    settings = make_settings(paper_broker.url, database_url, redis_url)
    # A maximum age of 3 s: the first order's own time and the wait past the TTL below stay
    # well within it, even on a machine three times slower than usual.
    risk = settings.risk.model_copy(update={"state_ttl_seconds": 0.2, "max_state_age_seconds": 3.0})
    settings = settings.model_copy(update={"risk": risk})
    async with start_gatekeeper(settings) as gate, aiohttp.ClientSession() as session:
        bot = Bot(gate.proxy_url, paper_auth, session, paper_broker.account_number)
        assert (await bot.place(order("AAPL", 1, "150.00"), dry_run=True)).status == 201
        paper_broker.book.add_fault(f"/accounts/{bot.account}/balances", status=500)
        await asyncio.sleep(0.3)  # stale but within the maximum age: the cached copy serves
        assert (await bot.place(order("AAPL", 1, "150.00"), dry_run=True)).status == 201
        await asyncio.sleep(3.0)  # fetched over 3.3 s ago: past the maximum age
        answer = await bot.place(order("AAPL", 1, "150.00"))
        assert answer.status == 503
        assert answer.codes == ["state_unavailable"]
    assert received_count(paper_broker.book, paper_broker.account_number) == 0
