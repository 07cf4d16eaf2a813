"""Two replicas (`gatekeeper serve` processes) on one Postgres and Redis, 50 concurrent
orders: the limits hold jointly."""

from __future__ import annotations

import asyncio
import os
import sys
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.bench.conftest import free_port, wait_http
from tests.fixtures.orders import Bot, order, protect, received_count

ROOT = Path(__file__).resolve().parents[2]
ORDERS = 50
# Account A: gross exposure 40,000.00 of NLV 100,000.00. Each order: 20 AAPL at 150.00 =
# 3,000.00 (3 %), resting below the ask, so it stays a working order.
EACH = order("AAPL", 20, "150.00")


@asynccontextmanager
async def replicas(paper_url: str, database_url: str, redis_url: str) -> AsyncIterator[list[str]]:
    """Two `gatekeeper serve` processes on one Postgres and Redis: their proxy URLs."""
    processes: list[asyncio.subprocess.Process] = []
    urls: list[str] = []
    try:
        for _ in range(2):
            proxy_port, admin_port = free_port(), free_port()
            env = {k: v for k, v in os.environ.items() if not k.startswith("GATEKEEPER_")}
            env.update(
                GATEKEEPER_LOG_LEVEL="WARNING",
                GATEKEEPER_PROXY__PORT=str(proxy_port),
                GATEKEEPER_ADMIN__PORT=str(admin_port),
                GATEKEEPER_PROXY__UPSTREAM_URL=paper_url,
                DATABASE_URL=database_url,
                REDIS_URL=redis_url,
            )
            processes.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "gatekeeper.cli",
                    "serve",
                    cwd=ROOT,
                    env=env,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                )
            )
            urls.append(f"http://127.0.0.1:{proxy_port}")
            await wait_http(f"http://127.0.0.1:{admin_port}/healthz")
        yield urls
    finally:
        for process in processes:
            if process.returncode is None:
                process.terminate()
        for process in processes:
            await process.wait()


def _burst_in_thread(urls: list[str], auth: dict[str, str], account: str) -> Counter[int]:
    """50 orders at once, alternating replicas, from a client with its own event loop (so the
    test's loop, which runs the paper broker, only serves the broker)."""

    async def burst() -> Counter[int]:
        connector = aiohttp.TCPConnector(limit=ORDERS)
        async with aiohttp.ClientSession(connector=connector) as session:
            bots = [Bot(url, auth, session, account) for url in urls]
            answers = await asyncio.gather(*(bots[i % 2].place(EACH) for i in range(ORDERS)))
        return Counter(answer.status for answer in answers)

    return asyncio.run(burst())


async def _burst(
    paper_broker: Any, database_url: str, redis_url: str, auth: dict[str, str]
) -> Counter[int]:
    async with replicas(paper_broker.url, database_url, redis_url) as urls:
        return await asyncio.to_thread(_burst_in_thread, urls, auth, paper_broker.account_number)


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
