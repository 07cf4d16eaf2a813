"""Two replicas (`gatekeeper serve` processes) on one Postgres and Redis in front of one paper
broker (`gatekeeper paper`), 50 concurrent orders: the limits hold jointly.

Every server is its own process, as deployed; the test's event loop only sends the burst.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg
import pytest

from gatekeeper.paper import CONTROL_TOKEN_HEADER, new_control_token
from tests.fixtures.orders import Bot, order, protect
from tests.fixtures.paper import paper_seed
from tests.processes import (
    base_environment,
    free_ports,
    paper_oauth_header,
    spawn_cli,
    stop_all,
    wait_http,
)

ORDERS = 50
ACCOUNT = paper_seed().users[0].accounts[0]  # Account A: gross exposure 40,000.00 of 100,000.00
# Each order: 20 AAPL at 150.00 = 3,000.00 (3 %), resting below the ask (a working order).
EACH = order("AAPL", 20, "150.00")
CONTROL_TOKEN = new_control_token()  # the paper broker's, for its /__paper/ routes


@dataclass
class Race:
    paper_url: str
    proxy_urls: list[str]
    auth: dict[str, str]


@asynccontextmanager
async def race_stack(database_url: str, redis_url: str) -> AsyncIterator[Race]:
    base = base_environment(database_url, redis_url)
    paper_port, *ports = free_ports(5)
    paper_url = f"http://127.0.0.1:{paper_port}"
    paper_env = {**base, "GATEKEEPER_PAPER__PORT": str(paper_port),
                 "GATEKEEPER_PAPER__CONTROL_TOKEN": CONTROL_TOKEN}  # fmt: skip
    processes = [await spawn_cli(["paper"], paper_env)]
    try:
        proxy_urls = []
        admin_urls = []
        for proxy_port, admin_port in (ports[:2], ports[2:]):
            env = {
                **base,
                "GATEKEEPER_PROXY__PORT": str(proxy_port),
                "GATEKEEPER_ADMIN__PORT": str(admin_port),
                "GATEKEEPER_PROXY__UPSTREAM_URL": paper_url,
                # The burst's orders of one account pass its lock one at a time: on a slow
                # machine the last ones would wait past the 2.5 s default and be refused 503
                # deadline_exceeded, which is not what these tests are about (deadlines have
                # their own: tests/integration/test_order_deadlines.py).
                "GATEKEEPER_RISK__ORDER_DEADLINE_SECONDS": "30",
            }
            processes.append(await spawn_cli(["serve"], env))
            proxy_urls.append(f"http://127.0.0.1:{proxy_port}")
            admin_urls.append(f"http://127.0.0.1:{admin_port}/healthz")
        await wait_http(paper_url + "/__paper/quotes", process=processes[0])
        for url, process in zip(admin_urls, processes[1:], strict=True):
            await wait_http(url, process=process)
        yield Race(paper_url, proxy_urls, await paper_oauth_header(paper_url))
    finally:
        await stop_all(processes)


async def _burst(race: Race) -> Counter[int]:
    connector = aiohttp.TCPConnector(limit=ORDERS)
    async with aiohttp.ClientSession(connector=connector) as session:
        bots = [Bot(url, race.auth, session, ACCOUNT) for url in race.proxy_urls]
        answers = await asyncio.gather(*(bots[i % 2].place(EACH) for i in range(ORDERS)))
    return Counter(answer.status for answer in answers)


async def _broker_view(race: Race) -> tuple[int, int]:
    """(order requests the broker received for the account, its orders now Live)."""
    async with aiohttp.ClientSession() as session:
        control = {CONTROL_TOKEN_HEADER: CONTROL_TOKEN}
        async with session.get(race.paper_url + "/__paper/orders", headers=control) as response:
            received: list[dict[str, Any]] = (await response.json())["data"]["items"]
        live_url = f"{race.paper_url}/accounts/{ACCOUNT}/orders/live"
        async with session.get(live_url, headers=race.auth) as response:
            live: list[dict[str, Any]] = (await response.json())["data"]["items"]
    return (
        sum(1 for entry in received if entry["account-number"] == ACCOUNT),
        sum(1 for item in live if item["status"] == "Live"),
    )


@pytest.mark.parametrize("run", range(3))
async def test_daily_trade_limit_holds_across_replicas(
    run: int, database_url: str, redis_url: str, pg_pool: asyncpg.Pool
) -> None:
    await protect(pg_pool, ACCOUNT, max_daily_trades=5, max_position_concentration_percentage=100)
    async with race_stack(database_url, redis_url) as race:
        statuses = await _burst(race)
        received, live = await _broker_view(race)
    assert statuses == {201: 5, 422: ORDERS - 5}
    assert (received, live) == (5, 5)
    counted = await pg_pool.fetchval(
        "SELECT count(*) FROM risk_decisions WHERE verdict = 'allow' AND trade_count > 0"
    )
    assert counted == 5


@pytest.mark.parametrize("run", range(3))
async def test_exposure_limit_holds_across_replicas(
    run: int, database_url: str, redis_url: str, pg_pool: asyncpg.Pool
) -> None:
    await protect(
        pg_pool,
        ACCOUNT,
        cash_reserve_percentage=20,
        max_daily_trades=10000,
        max_position_concentration_percentage=100,
    )
    async with race_stack(database_url, redis_url) as race:
        statuses = await _burst(race)
        received, live = await _broker_view(race)
    # 40,000 + n x 3,000 <= 75,000 allows 11 orders: no more, and (each order counted once,
    # in the state or in flight, never both) no fewer.
    assert statuses == {201: 11, 422: ORDERS - 11}
    assert (received, live) == (11, 11)
    rejected = await pg_pool.fetch("SELECT DISTINCT unnest(codes) AS code FROM risk_decisions")
    assert {row["code"] for row in rejected} == {"max_portfolio_exposure"}
