"""Postgres down, slow, hung and restarted mid-order: the order path fails closed (503
``database_unavailable``, nothing forwarded), keeps its answers bounded, and recovers on its
own once Postgres is back."""

from __future__ import annotations

import asyncio
import statistics
import time

import pytest

from tests.faults.figures import record
from tests.faults.stack import FaultStack, eventually
from tests.fixtures.orders import order

# A hung database must not hold an order past its deadline (the production default here,
# risk.order_deadline_seconds) and a little slack for the answer: a bot that gave up earlier
# would otherwise retry into a gatekeeper still holding its first order.
DEADLINE = 2.5
HUNG_BOUND = DEADLINE + 2.0


async def _recovers(faults: FaultStack, url: str, within: float = 15.0) -> float:
    """Seconds until an order is accepted again (one attempt every 0.2 s)."""
    bot = faults.bot(url)
    attempts = 0

    async def placed() -> bool:
        nonlocal attempts
        attempts += 1
        return (await bot.place(order(), f"recover-{attempts}")).status == 201

    return await eventually(placed, within, every=0.2)


@pytest.mark.parametrize("how", ["stopped", "unreachable"])
async def test_postgres_down_rejects_every_order_then_recovers(
    how: str, faults: FaultStack
) -> None:
    await faults.protect()
    faults.evidence.unrecorded_codes = frozenset({"database_unavailable"})
    async with faults.gatekeeper() as gate:
        bot = faults.bot(gate.proxy_url)
        assert (await bot.place(order(), "before")).status == 201
        if how == "stopped":  # the server process shut down
            await asyncio.to_thread(faults.postgres.stop)
        else:  # the network to it: connections refused
            await faults.pg_proxy.down()
        answers = [await bot.place(order(), f"down-{n}") for n in range(5)]
        assert [(a.status, a.code) for a in answers] == [(503, "database_unavailable")] * 5
        assert all(a.decision_id for a in answers)
        assert len(faults.paper.book.received_orders()) == 1
        if how == "stopped":
            await asyncio.to_thread(faults.postgres.start)
        else:
            await faults.pg_proxy.up()
        recovery = await _recovers(faults, gate.proxy_url)
    await faults.assert_invariants()
    record(f"Postgres down ({how})", "5/5 orders 503 database_unavailable, 0 forwarded",
           f"recovered {recovery:.2f} s after Postgres was back")  # fmt: skip


async def test_postgres_slow_orders_still_decided(faults: FaultStack) -> None:
    await faults.protect()
    async with faults.gatekeeper() as gate:
        bot = faults.bot(gate.proxy_url)
        assert (await bot.place(order(), "warm")).status == 201
        faults.pg_proxy.add("latency", "downstream", latency=0.05, jitter=0.02)
        took = []
        for n in range(4):
            started = time.monotonic()
            assert (await bot.place(order(), f"slow-{n}")).status == 201
            took.append(time.monotonic() - started)
    await faults.assert_invariants()
    record("Postgres slow (+50 ms/packet)", "4/4 orders accepted",
           f"median order {statistics.median(took) * 1000:.0f} ms")  # fmt: skip


@pytest.mark.parametrize("how", ["sigstop", "blackhole"])
async def test_postgres_hung_answers_within_bounds_then_recovers(
    how: str, faults: FaultStack
) -> None:
    await faults.protect()
    # no decision row can be written while the database hangs
    faults.evidence.unrecorded_codes = frozenset({"database_unavailable", "deadline_exceeded"})
    async with faults.gatekeeper(faults.settings(order_deadline_seconds=DEADLINE)) as gate:
        bot = faults.bot(gate.proxy_url)
        assert (await bot.place(order(), "before")).status == 201
        if how == "sigstop":
            await asyncio.to_thread(faults.postgres.pause)
        else:
            faults.pg_proxy.add("timeout", "upstream")
        try:
            started = time.monotonic()
            hung = await bot.place(order(), "hung")
            waited = time.monotonic() - started
        finally:
            if how == "sigstop":
                await asyncio.to_thread(faults.postgres.resume)
            else:
                faults.pg_proxy.clear()
                faults.pg_proxy.cut()
        assert hung.status == 503
        assert hung.code in ("database_unavailable", "deadline_exceeded")
        assert len(faults.paper.book.received_orders()) == 1
        recovery = await _recovers(faults, gate.proxy_url)
    await faults.assert_invariants()
    record(f"Postgres hung ({how})", f"order 503 {hung.code}, 0 forwarded",
           f"refused after {waited:.1f} s; recovered {recovery:.2f} s after")  # fmt: skip
    if waited >= HUNG_BOUND:
        pytest.xfail(
            f"issue 11 item 3 (bounded waiting): refused after {waited:.1f} s with"
            f" order_deadline_seconds={DEADLINE}; the deadline does not bound the Postgres steps"
            " (pool acquire, each query's 5 s command_timeout, then the error row's insert), so"
            f" a hung database holds an order past the deadline (bound {HUNG_BOUND} s)"
        )


async def test_postgres_restarted_mid_order_outcome_still_recorded(faults: FaultStack) -> None:
    await faults.protect()
    async with faults.gatekeeper() as gate:
        bot = faults.bot(gate.proxy_url)
        assert (await bot.place(order(), "before")).status == 201
        # The broker places the order and holds its answer 1 s: Postgres restarts meanwhile.
        faults.paper.book.add_fault(
            f"/accounts/{faults.account}/orders", delay_seconds=1.0, method="POST", times=1,
            after=True,
        )  # fmt: skip
        pending = asyncio.ensure_future(bot.place(order(), "mid"))
        await eventually(lambda: _received(faults, 2), within=5)
        started = time.monotonic()
        await asyncio.to_thread(faults.postgres.restart)
        answer = await pending
        assert answer.status == 201
        assert answer.decision_id is not None
        decision_id = answer.decision_id

        async def accepted() -> bool:
            return await faults.outcome(decision_id) == "accepted"

        await eventually(accepted, within=10)
        resolved = time.monotonic() - started
        recovery = await _recovers(faults, gate.proxy_url)
    await faults.assert_invariants()
    record("Postgres restarted mid-order", "order placed once, outcome accepted",
           f"outcome recorded {resolved:.2f} s after the restart began; next order in"
           f" {recovery:.2f} s")  # fmt: skip


async def _received(faults: FaultStack, n: int) -> bool:
    return len(faults.paper.book.received_orders()) >= n
