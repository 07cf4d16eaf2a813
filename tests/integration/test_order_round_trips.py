"""Issue 12, item 3: an allowed order on a warm account reaches the broker after one Redis
round trip (the account's state with its quotes, in one MGET) and no broker read: the day's
start, deposits, instruments and the state are all known already. Also when the broker has
no beginning-of-day snapshot: that it had none is remembered until it is asked again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
import asyncpg
import pytest
import redis.asyncio as aioredis

from gatekeeper.settings import RiskSettings
from tests.fixtures.gate import TEST_ORDER_DEADLINE, make_settings, start_gatekeeper
from tests.fixtures.orders import Bot, order, protect
from tests.fixtures.paper import PaperBroker


@pytest.fixture(params=["broker snapshot", "no broker snapshot"])
async def warm_bot(
    request: pytest.FixtureRequest,
    paper_broker: PaperBroker,
    paper_auth: dict[str, str],
    pg_pool: asyncpg.Pool,
    database_url: str,
    redis_url: str,
) -> AsyncIterator[Bot]:
    """A gatekeeper whose cached state lives long (no refresh falls inside the order under
    test), and a bot whose account it has seen."""
    await protect(pg_pool, paper_broker.account_number)
    if request.param == "no broker snapshot":
        del paper_broker.book.start_of_day[paper_broker.account_number]
    base = make_settings(paper_broker.url, database_url, redis_url)
    risk = RiskSettings(
        order_deadline_seconds=TEST_ORDER_DEADLINE,
        state_ttl_seconds=30.0,
        max_state_age_seconds=60.0,
        quote_ttl_seconds=30.0,
        refresh_after_forward_seconds=30.0,
    )
    async with (
        start_gatekeeper(base.model_copy(update={"risk": risk})) as gate,
        aiohttp.ClientSession() as session,
    ):
        bot = Bot(gate.proxy_url, paper_auth, session, paper_broker.account_number)
        for _ in range(2):  # the first reads everything; the second shows it is all cached
            assert (await bot.place(order("AAPL", 1, "150.00"))).status == 201
        await asyncio.sleep(0.5)  # the refresh after those forwards has run
        yield bot


async def test_an_allowed_order_on_a_warm_account_costs_one_redis_round_trip(
    warm_bot: Bot, paper_broker: PaperBroker, redis_url: str
) -> None:
    book = paper_broker.book
    seen_before = len(book.seen_requests())
    commands: list[tuple[float, str]] = []
    monitor_client = aioredis.from_url(redis_url)
    try:
        async with monitor_client.monitor() as monitor:
            listening = asyncio.Event()

            async def listen() -> None:
                listening.set()
                async for command in monitor.listen():
                    commands.append((float(command["time"]), command["command"]))

            listener = asyncio.create_task(listen())
            await listening.wait()
            await asyncio.sleep(0.1)
            sent_at = datetime.now(UTC).timestamp()
            answer = await warm_bot.place(order("AAPL", 1, "150.00"))
            await asyncio.sleep(0.2)
            listener.cancel()
    finally:
        await monitor_client.aclose()
    assert answer.status == 201, answer.body
    placed = book.received_orders()[-1]
    arrived = placed.received_at.timestamp()
    before = [c for at, c in commands if sent_at <= at < arrived]
    assert len(before) == 1, before
    assert before[0].startswith("MGET gk:state:"), before
    # The broker saw the order and nothing else: no read between the bot's send and it.
    new = [(r.method, r.raw_path.split("?")[0]) for r in book.seen_requests()[seen_before:]]
    assert new[0] == ("POST", f"/accounts/{warm_bot.account}/orders"), new
