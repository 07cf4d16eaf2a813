"""Two replicas (`gatekeeper serve` processes) in front of one paper broker process, with a
stream of orders: an automatic stop cancels the resting opening orders once (the broker's
request log is the judge), keeps the risk-reducing close, and nothing fills afterwards;
`gatekeeper stop --all` blocks every account on both replicas, one first seen after it too,
and `gatekeeper clear --all` needs --confirm."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import aiohttp
import asyncpg

from gatekeeper.paper import CONTROL_TOKEN_HEADER
from tests.fixtures.admin import run_cli
from tests.fixtures.orders import Bot, order, protect, state_shows
from tests.integration.test_order_race import ACCOUNT, CONTROL_TOKEN, Race, race_stack

CONTROL = {CONTROL_TOKEN_HEADER: CONTROL_TOKEN}
CASH_ACCOUNT = "5WT00002"  # the same user's: never traded before the global stop


async def _paper(race: Race, method: str, path: str, body: Any = None) -> Any:
    headers = CONTROL if path.startswith("/__paper/") else race.auth
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, race.paper_url + path, json=body, headers=headers) as response,
    ):
        return (await response.json())["data"]


async def _orders(race: Race, account: str) -> dict[int, str]:
    items = (await _paper(race, "GET", f"/accounts/{account}/orders/live"))["items"]
    return {item["id"]: item["status"] for item in items}


async def test_an_automatic_stop_cancels_resting_orders_once_across_replicas(
    database_url: str, redis_url: str, pg_pool: asyncpg.Pool
) -> None:
    await protect(pg_pool, ACCOUNT, max_position_concentration_percentage=100)
    async with race_stack(database_url, redis_url) as race, aiohttp.ClientSession() as session:
        bots = [Bot(url, race.auth, session, ACCOUNT) for url in race.proxy_urls]
        resting = [await bots[i % 2].place(order("AAPL", 20, "140.00")) for i in range(4)]
        close = await bots[0].place(order("TQQQ", 50, "60.00", action="Sell to Close"))
        assert [a.status for a in (*resting, close)] == [201] * 5
        buy_ids = {a.body["data"]["order"]["id"] for a in resting}
        close_id = close.body["data"]["order"]["id"]
        # BIL falls past the daily-loss limit while a stream of orders hits both replicas.
        await _paper(race, "PUT", "/__paper/quotes/BIL", {"bid": "69.99", "ask": "70.01"})
        await state_shows(redis_url, ACCOUNT, "94465.00")  # the replicas' shared cache
        stream = await asyncio.gather(
            *(bots[i % 2].place(order("AAPL", 1, "150.00")) for i in range(20))
        )
        assert {a.status for a in stream} == {422}
        deadline = asyncio.get_running_loop().time() + 20
        while not await pg_pool.fetchval("SELECT count(*) FROM stop_cancel_runs"):
            assert asyncio.get_running_loop().time() < deadline, "no cancels recorded"
            await asyncio.sleep(0.1)
        # More orders on both replicas: their credentials are confirmed again, no second run.
        await asyncio.gather(*(bots[i % 2].place(order("AAPL", 1, "150.00")) for i in range(6)))
        await asyncio.sleep(1.5)

        status = await _orders(race, ACCOUNT)
        assert {status[i] for i in buy_ids} == {"Cancelled"}
        assert status[close_id] == "Live"
        seen = (await _paper(race, "GET", "/__paper/requests"))["items"]
        cancels = Counter(s["raw-path"] for s in seen if s["method"] == "DELETE")
        assert cancels == Counter(f"/accounts/{ACCOUNT}/orders/{i}" for i in buy_ids)
        # Nothing fills afterwards.
        await _paper(race, "PUT", "/__paper/quotes/AAPL", {"bid": "139.90", "ask": "140.00"})
        positions = (await _paper(race, "GET", f"/accounts/{ACCOUNT}/positions"))["items"]
        assert "AAPL" not in {p["symbol"] for p in positions}
    assert await pg_pool.fetchval("SELECT count(*) FROM stop_cancel_runs") == 1
    outcomes = await pg_pool.fetch("SELECT outcome, count(*) FROM stop_order_cancels GROUP BY 1")
    assert dict(tuple(r) for r in outcomes) == {"cancelled": 4, "kept": 1}


async def test_stop_all_blocks_every_account_on_both_replicas(
    database_url: str, redis_url: str, pg_pool: asyncpg.Pool
) -> None:
    async with race_stack(database_url, redis_url) as race, aiohttp.ClientSession() as session:
        bots = [Bot(url, race.auth, session, ACCOUNT) for url in race.proxy_urls]
        assert [(await b.place(order("AAPL", 1, "150.00"))).status for b in bots] == [201, 201]
        stopped = await run_cli(database_url, "stop", "--all", "--reason", "market halt")
        assert stopped.returncode == 0, stopped.stderr
        assert "GLOBAL EMERGENCY STOP triggered" in stopped.stdout
        cash = [Bot(url, race.auth, session, CASH_ACCOUNT) for url in race.proxy_urls]
        sell = order("AAPL", 1, None, action="Sell to Close")  # risk-reducing, still halted
        for bot in (*bots, *cash):
            answer = await bot.place(order("AAPL", 1, "150.00") if bot in bots else sell)
            assert "emergency_stop" in answer.codes, answer.body
        unconfirmed = await run_cli(database_url, "clear", "--all")
        assert unconfirmed.returncode != 0
        assert (await cash[1].place(sell)).codes == ["emergency_stop"]
        cleared = await run_cli(database_url, "clear", "--all", "--confirm")
        assert cleared.returncode == 0, cleared.stderr
        assert [(await b.place(sell)).status for b in cash] == [201, 201]
    events = await pg_pool.fetch("SELECT event, via FROM global_emergency_events ORDER BY id")
    assert [tuple(e) for e in events] == [("triggered", "cli"), ("cleared", "cli")]
