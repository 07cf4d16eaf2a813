"""Two replicas on one Postgres and Redis, 50 concurrent orders: limits hold jointly."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.fixtures.gate import make_settings, start_gatekeeper
from tests.fixtures.orders import Bot, order, protect, received_count

ORDERS = 50
# Account A: gross exposure 40,000.00 of NLV 100,000.00. Each order: 20 AAPL at 150.00 =
# 3,000.00 (3 %), resting below the ask, so it stays a working order.
EACH = order("AAPL", 20, "150.00")


async def _burst(
    paper_broker: Any, database_url: str, redis_url: str, auth: dict[str, str]
) -> Counter[int]:
    settings = make_settings(paper_broker.url, database_url, redis_url)
    async with (
        start_gatekeeper(settings) as one,
        start_gatekeeper(settings) as two,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=ORDERS)) as session,
    ):
        bots = [
            Bot(gate.proxy_url, auth, session, paper_broker.account_number) for gate in (one, two)
        ]
        answers = await asyncio.gather(*(bots[i % 2].place(EACH) for i in range(ORDERS)))
    return Counter(answer.status for answer in answers)


@pytest.mark.parametrize("run", range(3))
async def test_daily_trade_limit_holds_across_replicas(
    run: int,
    paper_broker: Any,
    paper_auth: dict[str, str],
    database_url: str,
    redis_url: str,
    pg_pool: asyncpg.Pool,
) -> None:
    await protect(
        pg_pool,
        paper_broker.account_number,
        max_daily_trades=5,
        max_position_concentration_percentage=100,
    )
    statuses = await _burst(paper_broker, database_url, redis_url, paper_auth)
    assert statuses == {201: 5, 422: ORDERS - 5}
    assert received_count(paper_broker.book, paper_broker.account_number) == 5
    counted = await pg_pool.fetchval(
        "SELECT count(*) FROM risk_decisions WHERE verdict = 'allow' AND trade_count > 0"
    )
    assert counted == 5


@pytest.mark.parametrize("run", range(3))
async def test_exposure_limit_holds_across_replicas(
    run: int,
    paper_broker: Any,
    paper_auth: dict[str, str],
    database_url: str,
    redis_url: str,
    pg_pool: asyncpg.Pool,
) -> None:
    await protect(
        pg_pool,
        paper_broker.account_number,
        cash_reserve_percentage=20,
        max_daily_trades=10000,
        max_position_concentration_percentage=100,
    )
    statuses = await _burst(paper_broker, database_url, redis_url, paper_auth)
    # 40,000 + n x 3,000 <= 75,000 allows at most 11 orders; in-flight orders may be counted
    # twice for a moment (in the state and as reservations), never zero times.
    received = received_count(paper_broker.book, paper_broker.account_number)
    assert 1 <= received <= 11
    assert statuses[201] == received
    assert statuses[201] + statuses[422] == ORDERS
    rejected = await pg_pool.fetch("SELECT DISTINCT unnest(codes) AS code FROM risk_decisions")
    assert {row["code"] for row in rejected} == {"max_portfolio_exposure"}
    live = paper_broker.book.accounts[paper_broker.account_number].orders
    assert sum(1 for o in live.values() if o.status == "Live") == received
