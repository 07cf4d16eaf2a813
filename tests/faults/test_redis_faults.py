"""Redis down, slow and flushed mid-day: orders fail closed while the cache is unreachable
(503 ``cache_unavailable``), and a flush loses nothing that counts, since trades, reservations
and retries are judged from Postgres."""

from __future__ import annotations

import asyncio
import statistics
import time

import pytest
import redis.asyncio as aioredis

from tests.faults.figures import record
from tests.faults.stack import FaultStack, eventually
from tests.fixtures.orders import order


@pytest.mark.parametrize("how", ["killed", "unreachable"])
async def test_redis_down_rejects_orders_then_recovers(how: str, faults: FaultStack) -> None:
    await faults.protect()
    async with faults.gatekeeper() as gate:
        bot = faults.bot(gate.proxy_url)
        assert (await bot.place(order(), "before")).status == 201
        if how == "killed":  # SIGKILL: the cache is gone with it
            await asyncio.to_thread(faults.redis.kill)
        else:
            await faults.redis_proxy.down()
        answers = [await bot.place(order(), f"down-{n}") for n in range(3)]
        assert [(a.status, a.code) for a in answers] == [(503, "cache_unavailable")] * 3
        assert len(faults.paper.book.received_orders()) == 1
        if how == "killed":
            await asyncio.to_thread(faults.redis.start)
        else:
            await faults.redis_proxy.up()
        attempts = 0

        async def placed() -> bool:
            nonlocal attempts
            attempts += 1
            return (await bot.place(order(), f"recover-{attempts}")).status == 201

        recovery = await eventually(placed, within=15, every=0.2)
    await faults.assert_invariants()
    record(f"Redis down ({how})", "3/3 orders 503 cache_unavailable, 0 forwarded",
           f"recovered {recovery:.2f} s after Redis was back")  # fmt: skip


async def test_redis_slow_orders_still_decided(faults: FaultStack) -> None:
    await faults.protect()
    async with faults.gatekeeper() as gate:
        bot = faults.bot(gate.proxy_url)
        faults.redis_proxy.add("latency", "downstream", latency=0.03, jitter=0.01)
        took = []
        for n in range(4):
            started = time.monotonic()
            assert (await bot.place(order(), f"slow-{n}")).status == 201
            took.append(time.monotonic() - started)
    await faults.assert_invariants()
    record("Redis slow (+30 ms/packet)", "4/4 orders accepted",
           f"median order {statistics.median(took) * 1000:.0f} ms")  # fmt: skip


async def test_redis_flushed_mid_day_keeps_the_trade_count_and_retries(
    faults: FaultStack,
) -> None:
    await faults.protect(max_daily_trades=4)
    retried = order(**{"external-identifier": "bot-flush-1"})
    async with faults.gatekeeper() as gate:
        bot = faults.bot(gate.proxy_url)
        first = [await bot.place(retried, "flush-1")]
        first += [await bot.place(order(), f"flush-{n}") for n in (2, 3)]
        assert [a.status for a in first] == [201] * 3
        client = aioredis.from_url(faults.redis.url)
        try:
            await client.flushall()
        finally:
            await client.aclose()
        again = await bot.place(retried, "flush-1")  # the bot retries after the flush
        assert again.status == 201  # answered from the first outcome, not forwarded
        after = [await bot.place(order(), f"flush-{n}") for n in (4, 5, 6)]
    assert [a.status for a in after] == [201, 422, 422]
    assert {a.code for a in after[1:]} == {"risk_check_failed"}
    assert len(faults.paper.book.received_orders()) == 4
    await faults.assert_invariants()
    record("Redis flushed mid-day", "limit of 4 trades held, retry not re-sent",
           "4 orders placed of 7 submissions (1 retry, 2 over the limit)")  # fmt: skip
