"""Many orders at once: duplicate submissions on two replicas at the same moment, a burst
above the gatekeeper's capacity, and an emergency stop in the middle of a stream of orders."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from gatekeeper.adapters import users
from gatekeeper.auth import Role
from tests.faults.figures import record
from tests.faults.invariants import Seen
from tests.faults.stack import FaultBot, FaultStack, eventually
from tests.fixtures.orders import order


async def test_duplicate_submissions_on_two_replicas_placed_once(faults: FaultStack) -> None:
    await faults.protect()
    settings = faults.settings(duplicate_window_seconds=60.0)
    faults.broker_proxy.add("latency", "downstream", latency=0.03)  # the first is in flight
    own_id = order(**{"external-identifier": "bot-dup-1"})
    no_id = order(quantity=2)  # caught by its fingerprint (duplicate window on)
    async with faults.gatekeeper(settings) as one, faults.gatekeeper(settings) as two:
        bots = [faults.bot(one.proxy_url), faults.bot(two.proxy_url)]
        for n, bot in enumerate(bots):  # each replica has seen the account and its credential
            assert (await bot.place(order(), f"warm-{n}", dry_run=True)).status == 201
        answers = await asyncio.gather(
            *(bot.place(body, name) for bot in bots for _ in range(3)
              for body, name in ((own_id, "dup-own-id"), (no_id, "dup-fingerprint")))
        )  # fmt: skip
    outcomes = Counter(f"{a.status} {a.code or ''}".strip() for a in answers)
    # A retry waits for nothing: answered from the first (201), 409 while it is in flight, or
    # refused at its deadline behind the account lock (never forwarded).
    assert set(outcomes) <= {"201", "409 duplicate_order", "503 deadline_exceeded"}, answers
    received = faults.paper.book.received_orders()
    assert sorted(_quantity(e.body) for e in received) == [1, 2]
    await faults.assert_invariants()
    record("duplicate submissions, 2 replicas at once", "2 orders x 6 sends: each placed once",
           f"answers {dict(sorted(outcomes.items()))}")  # fmt: skip


def _quantity(body: dict[str, Any]) -> int:
    legs: list[dict[str, Any]] = body["legs"]
    return int(legs[0]["quantity"])


@pytest.mark.parametrize(
    ("limit", "proxy", "risk"),
    [
        ("orders in flight", {}, {"order_max_in_flight": 8}),
        ("client connections", {"max_client_connections": 8,
                                "max_client_connections_per_address": 8}, {}),
    ],
)  # fmt: skip
async def test_burst_above_capacity_fails_fast_with_decisions(
    limit: str, proxy: dict[str, int], risk: dict[str, int], faults: FaultStack
) -> None:
    await faults.protect(max_daily_trades=1000)
    settings = faults.settings(
        proxy={"order_max_connections": 2, **proxy}, order_deadline_seconds=2.5, **risk
    )
    faults.broker_proxy.add("latency", "downstream", latency=0.05)
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with faults.gatekeeper(settings) as gate, aiohttp.ClientSession(connector=connector) as s:
        bot = FaultBot(gate.proxy_url, faults.auth, faults.account, s, faults.evidence)
        started = time.monotonic()
        answers = await asyncio.gather(*(bot.place(order(), f"burst-{n}") for n in range(40)))
        took = time.monotonic() - started
    outcomes = Counter(f"{a.status} {a.code or ''}".strip() for a in answers)
    assert {a.status for a in answers} <= {201, 503}, outcomes
    assert sum(1 for a in answers if a.status == 503) > 0  # above capacity: refused at once
    assert took < 10  # nothing queued for long
    report = await faults.check()
    record(f"burst of 40 above capacity ({limit}: 8)",
           f"answers {dict(sorted(outcomes.items()))}; I2 {report.count('I2')}",
           f"all answered within {took:.2f} s")  # fmt: skip
    # Every 503 has its decision row, the connection limit's too (issue 11 item 3).
    assert report.counts == {"I1": 0, "I2": 0, "I3": 0, "I4": 0, "I5": 0, "I6": 0}, report.explain()


async def _admin_token(faults: FaultStack) -> str:
    """An admin's API token, planted: it must appear nowhere (I5)."""
    async with faults.pool.acquire() as conn:
        admin = await users.create_user(conn, "ops@example.com")
        token, _ = await users.create_token(conn, admin, Role("admin"), timedelta(hours=1))
    faults.evidence.secrets.append(token)
    return token


async def _stop(faults: FaultStack, admin_url: str, protection_id: int, token: str) -> None:
    async with faults.session.post(
        f"{admin_url}/api/v1/portfolio_protections/{protection_id}/emergency_stop",
        json={"reason": "fault suite", "triggered_by": "ops"},
        headers={"Authorization": f"Bearer {token}"},
    ) as response:
        assert response.status == 200, await response.text()
    faults.evidence.stops_answered[faults.account] = datetime.now(UTC)


async def _stop_started(faults: FaultStack) -> datetime:
    """The stop row's time (its transaction's start: the commit is later)."""
    committed: datetime = await faults.pool.fetchval(
        "SELECT occurred_at FROM emergency_events WHERE event = 'triggered'"
    )
    return committed


async def test_emergency_stop_mid_stream_refuses_every_later_order(faults: FaultStack) -> None:
    protection = await faults.protect(max_daily_trades=1000)
    token = await _admin_token(faults)
    async with faults.gatekeeper() as gate:
        bot = faults.bot(gate.proxy_url)
        stopped = asyncio.Event()
        after: list[Seen] = []

        async def stream(worker: int) -> None:
            n = 0
            while len(after) < 6:
                was_stopped = stopped.is_set()
                seen = await bot.place(order(), f"stream-{worker}-{n}")
                if was_stopped:
                    after.append(seen)
                n += 1

        workers = [asyncio.ensure_future(stream(w)) for w in range(3)]

        async def streaming() -> bool:
            return len(faults.paper.book.received_orders()) >= 3

        await eventually(streaming, within=15)
        asked = time.monotonic()
        await _stop(faults, gate.admin_url, protection.id, token)
        answered = time.monotonic() - asked
        stopped.set()
        await asyncio.gather(*workers)
    assert {(a.status, a.code) for a in after} == {(422, "risk_check_failed")}
    started = await _stop_started(faults)
    received = faults.paper.book.received_orders()
    delay = max((e.received_at - started).total_seconds() for e in received)
    await faults.assert_invariants()
    record("emergency stop mid-stream (3 bots)",
           f"{len(received)} placed; every order after the stop's answer 422",
           f"last forward {delay * 1000:+.0f} ms from the stop's row time; stop answered in"
           f" {answered * 1000:.0f} ms")  # fmt: skip


async def test_nothing_reaches_the_broker_after_a_committed_stop(faults: FaultStack) -> None:
    # The stop answers at once (no working orders to cancel through the slow link).
    protection = await faults.protect(max_daily_trades=1000, cancel_working_orders_on_stop=False)
    token = await _admin_token(faults)
    async with faults.gatekeeper() as gate:
        bot = faults.bot(gate.proxy_url)
        assert (await bot.place(order(), "before")).status == 201
        faults.broker_proxy.add("latency", "upstream", latency=0.3)  # the forward in transit
        pending = asyncio.ensure_future(bot.place(order(), "in-flight"))

        async def decided() -> bool:
            query = "SELECT count(*) FROM risk_decisions WHERE verdict = 'allow'"
            return bool(await faults.pool.fetchval(query) == 2)

        await eventually(decided, within=10, every=0.005)
        await _stop(faults, gate.admin_url, protection.id, token)
        await pending
    answered = faults.evidence.stops_answered[faults.account]
    last = max(e.received_at for e in faults.paper.book.received_orders())
    record("order decided just before a stop (300 ms transit)", "stop waits for the send; I4 0",
           f"stop answered {(answered - last).total_seconds() * 1000:.0f} ms after the last"
           " forward reached the broker")  # fmt: skip
    assert last <= answered
    await faults.assert_invariants()
