"""The day's ledger kept by the database (sql/0030): trades counted and orders in flight equal a
from-scratch recount over the audit rows (the scan the order path used to run, kept here as
the oracle) after any mix of decisions, outcomes, reconciler resolutions and locked reads;
across the trading-day boundary; and an accepted order leaves the in-flight set once the
account state shows it.

The helpers here are shared by the other test_ledger*.py files."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import AsyncIterator, Collection, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from gatekeeper.adapters import decisions as db
from gatekeeper.adapters import outcomes
from gatekeeper.adapters.pg import Conn
from gatekeeper.core.tradingday import NEW_YORK, trading_day

ACCOUNT = "5WT00001"
OTHER = "5WT00002"

# The order path's read before sql/0030 (every counted decision of the day with its newest
# outcome): the oracle.
SCAN = """
    SELECT d.trade_count, d.reserved_orders, d.decided_at, o.outcome, o.recorded_at,
           o.broker_order_id
    FROM risk_decisions d
    LEFT JOIN LATERAL (SELECT * FROM order_outcomes lo WHERE lo.decision_id = d.decision_id
                       ORDER BY lo.id DESC LIMIT 1) AS o ON true
    WHERE d.account_id = $1 AND d.trading_day = $2 AND d.verdict = 'allow'
      AND d.trade_count > 0 AND (o.outcome IS NULL OR o.outcome IN ('accepted', 'unknown'))
    ORDER BY d.id
"""


async def recount(
    conn: Conn,
    account: str,
    day: date,
    *,
    now: datetime,
    seen: Collection[str],
) -> tuple[int, list[dict[str, Any]]]:
    """Trades today and the orders in flight, recounted from the audit rows: an order with a
    broker id is in flight until ``seen`` shows it; accepted without one for PENDING_HORIZON
    after the answer; unresolved (no outcome, ``unknown``) until resolved."""
    trades = 0
    in_flight: list[dict[str, Any]] = []
    for count, orders, _decided_at, outcome, recorded_at, order_id in await conn.fetch(
        SCAN, account, day
    ):
        trades += count
        if order_id is not None:
            flying = order_id not in seen
        elif outcome == "accepted":
            flying = recorded_at > now - db.PENDING_HORIZON
        else:
            flying = True
        if flying:
            in_flight.extend(json.loads(orders))
    return trades, in_flight


def order(symbol: str, quantity: int = 1) -> dict[str, Any]:
    """A reserved order as the engine dumps it (only its shape matters here)."""
    return {
        "order-type": "Market",
        "time-in-force": "Day",
        "legs": [
            {
                "instrument-type": "Equity",
                "symbol": symbol,
                "quantity": str(quantity),
                "action": "Buy to Open",
            }
        ],
    }


async def decide(
    conn: Conn,
    account: str,
    day: date,
    *,
    verdict: str = "allow",
    trade_count: int = 1,
    orders: Sequence[dict[str, Any]] = (),
    detail: dict[str, Any] | None = None,
) -> uuid.UUID:
    """Append one decision row (as the engine records it) and return its id."""
    decision_id = uuid.uuid4()
    await db.insert_decision(
        conn,
        db.DecisionRow(
            decision_id=decision_id,
            account_id=account,
            route_kind="place",
            verdict=verdict,  # type: ignore[arg-type]
            codes=[],
            notes=[],
            message=verdict,
            detail=detail or {},
            trading_day=day,
            trade_count=trade_count,
            reserved_orders=list(orders),
            replaces_order_id=None,
            latency_ms=1.0,
        ),
    )
    return decision_id


async def answer(
    conn: Conn,
    decision_id: uuid.UUID,
    account: str,
    outcome: db.Outcome,
    broker_order_id: str | None = None,
    resolution: str | None = None,
) -> None:
    """Append an outcome row."""
    await db.insert_outcome(
        conn,
        decision_id,
        account,
        outcome,
        http_status=None,
        broker_order_id=broker_order_id,
        resolution=resolution,
    )


async def ledger_read(
    conn: Conn,
    account: str,
    *,
    seen: Collection[str] = (),
    clock: datetime | None = None,
    hold: bool = True,
    state_fetched_at: datetime | None = None,
) -> db.Reservations:
    """The reservations the order path reads (in a transaction, under the account lock)."""
    async with conn.transaction():
        if hold:
            await db.lock_account(conn, account)
        inputs = await db.decision_inputs(
            conn,
            account,
            Decimal(100_000),
            hold=hold,
            seen_order_ids=seen,
            clock=clock,
            state_fetched_at=state_fetched_at,
        )
    return inputs.reservations


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(database_url)
    try:
        yield connection
    finally:
        await connection.close()


async def test_the_ledger_equals_a_recount_after_a_random_mix_of_rows(
    conn: asyncpg.Connection,
) -> None:
    rng = random.Random(20261204)
    now = await db.database_now(conn)
    today = trading_day(now)
    days = {today: None, today + timedelta(days=1): now + timedelta(days=1)}
    made: list[tuple[uuid.UUID, str, date]] = []
    outcomes_of: dict[uuid.UUID, set[bool]] = {}  # per decision: {is unknown} written
    broker_ids: list[str] = []
    seen: set[str] = set()
    for step in range(400):
        action = rng.random()
        if action < 0.35 or not made:
            account, day = rng.choice((ACCOUNT, OTHER)), rng.choice(list(days))
            verdict = rng.choice(("allow", "allow", "allow", "reject"))
            count = rng.choice((0, 1, 1, 2)) if verdict == "allow" else 0
            orders = [order(f"S{step}"), order(f"T{step}", 2)][: max(count, 1)]
            decision_id = await decide(
                conn,
                account,
                day,
                verdict=verdict,
                trade_count=count,
                orders=orders if verdict == "allow" and count else [],
            )
            made.append((decision_id, account, day))
            outcomes_of[decision_id] = set()
        elif action < 0.75:
            decision_id, account, _ = rng.choice(made)
            written = outcomes_of[decision_id]
            kinds: list[db.Outcome] = []
            if True not in written:
                kinds.append("unknown")
            if False not in written:
                kinds += ["accepted", "accepted", "broker_rejected", "not_sent", "not_placed"]
            if not kinds:
                continue
            kind = rng.choice(kinds)
            order_id = None
            if kind == "accepted" and rng.random() < 0.8:
                order_id = f"B{step}"
                broker_ids.append(order_id)
            await answer(conn, decision_id, account, kind, order_id)
            written.add(kind == "unknown")
        elif action < 0.82:
            # the reconciler: claim what is unresolved, resolve some of it
            for item in await outcomes.claim_unresolved(
                conn, "test", grace_seconds=0, lease_seconds=60
            ):
                if rng.random() < 0.5 or False in outcomes_of[item.decision_id]:
                    continue
                kind = rng.choice(("accepted", "not_placed"))
                order_id = f"R{step}" if kind == "accepted" else None
                if await outcomes.resolve(
                    conn,
                    item,
                    kind,
                    broker_order_id=order_id,
                    answer_body=None,
                    resolution="external_identifier" if order_id else "not_found",
                ):
                    outcomes_of[item.decision_id].add(False)
                    if order_id:
                        broker_ids.append(order_id)
        else:
            # the account state shows some orders; or, a minute on (the clock only moves
            # forward), every order answered by then, and a locked read deletes the rows it
            # finds settled
            if rng.random() < 0.7 and broker_ids:
                seen.update(rng.sample(broker_ids, k=min(3, len(broker_ids))))
                await ledger_read(conn, rng.choice((ACCOUNT, OTHER)), seen=seen)
            else:
                seen.update(broker_ids)
                later = await db.database_now(conn) + db.SEEN_SETTLE_AFTER + timedelta(seconds=1)
                await ledger_read(conn, rng.choice((ACCOUNT, OTHER)), seen=seen, clock=later)
        if step % 20 == 19 or step == 399:
            await assert_ledger_is_the_recount(conn, days, seen)
    # the mix had every kind of outcome, late `unknown`s after a resolution, reconciler
    # resolutions, settled rows deleted by the locked read, and orders left in flight
    kinds_written = await conn.fetch("SELECT DISTINCT outcome FROM order_outcomes")
    assert {r["outcome"] for r in kinds_written} == {
        "accepted",
        "broker_rejected",
        "unknown",
        "not_sent",
        "not_placed",
    }
    assert await conn.fetchval(
        "SELECT count(*) FROM order_outcomes u JOIN order_outcomes o USING (decision_id)"
        " WHERE u.outcome = 'unknown' AND o.outcome <> 'unknown' AND u.id > o.id"
    )
    assert await conn.fetchval("SELECT count(*) FROM order_outcomes WHERE resolution <> ''")
    assert await conn.fetchval(
        "SELECT count(*) FROM order_outcomes o WHERE o.outcome = 'accepted'"
        " AND NOT EXISTS (SELECT 1 FROM orders_in_flight f WHERE f.decision_id = o.decision_id)"
    )
    assert await conn.fetchval("SELECT count(*) FROM orders_in_flight")


async def assert_ledger_is_the_recount(
    conn: asyncpg.Connection, days: dict[date, datetime | None], seen: Collection[str]
) -> None:
    for account in (ACCOUNT, OTHER):
        for day, clock in days.items():
            read = await ledger_read(conn, account, seen=seen, clock=clock, hold=False)
            now = clock or await db.database_now(conn)
            trades, in_flight = await recount(conn, account, day, now=now, seen=seen)
            assert (read.trades_today, read.in_flight) == (trades, in_flight), (account, day)
            assert await db.trades_today(conn, account, day) == trades


async def test_an_accepted_order_leaves_the_in_flight_set_once_the_state_shows_it(
    conn: asyncpg.Connection,
) -> None:
    now = await db.database_now(conn)
    day = trading_day(now)
    later = now + db.SEEN_SETTLE_AFTER + timedelta(seconds=1)
    if trading_day(later) != day:
        pytest.skip("too close to New York midnight for this clock")
    placed = await decide(conn, ACCOUNT, day, orders=[order("AAPL")])
    await answer(conn, placed, ACCOUNT, "accepted", "1001")
    pending = await decide(conn, ACCOUNT, day, orders=[order("MSFT")])

    before = await ledger_read(conn, ACCOUNT, seen={"999"})
    assert before.trades_today == 2
    assert [o["legs"][0]["symbol"] for o in before.in_flight] == ["AAPL", "MSFT"]

    shown = await ledger_read(conn, ACCOUNT, seen={"999", "1001"})
    assert shown.trades_today == 2  # still a trade of the day
    assert [o["legs"][0]["symbol"] for o in shown.in_flight] == ["MSFT"]
    # another replica's older state, which does not show it yet, still counts it
    older = await ledger_read(conn, ACCOUNT, seen={"999"})
    assert [o["legs"][0]["symbol"] for o in older.in_flight] == ["AAPL", "MSFT"]

    # once no usable state can predate it, the locked read deletes the settled row
    settled = await ledger_read(conn, ACCOUNT, seen={"999", "1001"}, clock=later)
    assert [o["legs"][0]["symbol"] for o in settled.in_flight] == ["MSFT"]
    rows = await conn.fetch("SELECT decision_id FROM orders_in_flight")
    assert [r["decision_id"] for r in rows] == [pending]
    again = await ledger_read(conn, ACCOUNT, seen=(), clock=later)
    assert again.trades_today == 2
    assert [o["legs"][0]["symbol"] for o in again.in_flight] == ["MSFT"]


async def test_only_orders_answered_after_the_state_was_fetched_are_looked_up(
    conn: asyncpg.Connection,
) -> None:
    """An order the broker answered before the account state was fetched is in that state
    (``/orders/live`` lists the day's orders in any status): given the state's fetch time, the
    read looks up only the orders answered since (less a margin for the hosts' clocks);
    without it, every one not yet settled."""
    now = await db.database_now(conn)
    day = trading_day(now)
    before = await decide(conn, ACCOUNT, day, orders=[order("AAPL")])
    await answer(conn, before, ACCOUNT, "accepted", "5001")
    recorded = await conn.fetchval(
        "SELECT recorded_at FROM order_outcomes WHERE decision_id = $1", before
    )
    clock = recorded + timedelta(seconds=10)
    if trading_day(clock) != day:
        pytest.skip("too close to New York midnight for this clock")
    margin = db.STATE_CLOCK_MARGIN
    # a state fetched after the answer (beyond the clocks' margin), one fetched just before it
    after = recorded + margin + timedelta(seconds=1)
    just_before = recorded + margin - timedelta(milliseconds=1)
    fresh = await ledger_read(conn, ACCOUNT, clock=clock, state_fetched_at=after)
    older = await ledger_read(conn, ACCOUNT, clock=clock, state_fetched_at=just_before)
    unknown_age = await ledger_read(conn, ACCOUNT, clock=clock)
    assert fresh.in_flight == []
    assert [o["legs"][0]["symbol"] for o in older.in_flight] == ["AAPL"]
    assert [o["legs"][0]["symbol"] for o in unknown_age.in_flight] == ["AAPL"]
    assert fresh.trades_today == older.trades_today == unknown_age.trades_today == 1
    # the state lists it: not in flight whatever its age
    shown = await ledger_read(conn, ACCOUNT, clock=clock, seen={"5001"})
    assert shown.in_flight == []
    # unresolved ones are in flight whatever the state's age
    pending = await decide(conn, ACCOUNT, day, orders=[order("MSFT")])
    again = await ledger_read(conn, ACCOUNT, clock=clock, state_fetched_at=after)
    assert [o["legs"][0]["symbol"] for o in again.in_flight] == ["MSFT"]
    assert pending in {r["decision_id"] for r in await conn.fetch("TABLE orders_in_flight")}


async def test_unresolved_orders_stay_in_flight_until_resolved(
    conn: asyncpg.Connection,
) -> None:
    """Issue 11: an order without an outcome, or `unknown`, counts as in flight and as a
    trade until the reconciler resolves it, even hours later; `not_placed` ends both."""
    now = await db.database_now(conn)
    day = trading_day(now)
    lost = await decide(conn, ACCOUNT, day, orders=[order("AAPL")])
    await answer(conn, lost, ACCOUNT, "unknown")
    silent = await decide(conn, ACCOUNT, day, orders=[order("MSFT")])
    nameless = await decide(conn, ACCOUNT, day, orders=[order("IBM")])
    await answer(conn, nameless, ACCOUNT, "accepted")  # an answer without a broker id
    later = now + db.PENDING_HORIZON + timedelta(minutes=1)
    if trading_day(later) != day:
        pytest.skip("too close to New York midnight for this clock")

    read = await ledger_read(conn, ACCOUNT, clock=later)
    assert read.trades_today == 3
    assert [o["legs"][0]["symbol"] for o in read.in_flight] == ["AAPL", "MSFT"]

    (item,) = [
        i
        for i in await outcomes.claim_unresolved(conn, "t", grace_seconds=0, lease_seconds=60)
        if i.decision_id == lost
    ]
    await outcomes.resolve(
        conn, item, "not_placed", broker_order_id=None, answer_body=None, resolution="not_found"
    )
    read = await ledger_read(conn, ACCOUNT, clock=later)
    assert read.trades_today == 2
    assert [o["legs"][0]["symbol"] for o in read.in_flight] == ["MSFT"]
    assert [o["decision_id"] for o in await outcomes.unresolved_orders(conn, ACCOUNT)] == [
        str(silent)
    ]


async def test_the_count_and_the_orders_in_flight_switch_at_new_york_midnight(
    conn: asyncpg.Connection,
) -> None:
    # today's New York midnight ahead (the clock only moves forward from the rows' times)
    now = await db.database_now(conn)
    day = trading_day(now)
    following = day + timedelta(days=1)
    first = datetime(following.year, following.month, following.day, tzinfo=NEW_YORK)
    last = first - timedelta(milliseconds=1)
    if first - now < timedelta(minutes=2):
        pytest.skip("too close to New York midnight for this clock")
    assert (trading_day(last), trading_day(first)) == (day, following)
    late = await decide(conn, ACCOUNT, day, orders=[order("AAPL")])
    accepted = await decide(conn, ACCOUNT, day, orders=[order("MSFT")])
    await answer(conn, accepted, ACCOUNT, "accepted", "2001")

    assert (await ledger_read(conn, ACCOUNT, clock=last)).trades_today == 2
    next_day = await ledger_read(conn, ACCOUNT, clock=first)
    assert (next_day.trades_today, next_day.in_flight) == (0, [])
    # the next day's locked read dropped the earlier day's accepted row; the unresolved one
    # stays for the reconciler
    rows = await conn.fetch("SELECT decision_id FROM orders_in_flight")
    assert [r["decision_id"] for r in rows] == [late]
    await decide(conn, ACCOUNT, day + timedelta(days=1), orders=[order("IBM")])
    # an outcome recorded after midnight counts for its decision's day
    await answer(conn, late, ACCOUNT, "broker_rejected")
    assert await db.trades_today(conn, ACCOUNT, day) == 1
    assert await db.trades_today(conn, ACCOUNT, day + timedelta(days=1)) == 1
    assert (await ledger_read(conn, ACCOUNT, clock=last)).trades_today == 1
