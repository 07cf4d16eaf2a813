"""decision_inputs_locked: the account lock, the duplicate lookup and the decision's inputs in
one round trip. It takes the same lock as lock_account (protection writes and emergency stops
take it), so two decisions of one account on two connections run one after the other and the
second sees the first's committed reservation."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from decimal import Decimal

import asyncpg
import pytest

from gatekeeper.adapters import decisions as db
from gatekeeper.adapters.pg import Conn
from gatekeeper.core.tradingday import trading_day
from tests.integration.test_ledger import ACCOUNT, OTHER, answer, decide, order


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    async with asyncpg.create_pool(database_url, min_size=3, max_size=3) as connections:
        yield connections


async def wait_until_blocked_on_a_lock(pool: asyncpg.Pool, pid: int) -> None:
    """Poll (with a deadline) until the backend ``pid`` waits for a lock."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        waiting = await pool.fetchval(
            "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", pid
        )
        if waiting:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"backend {pid} never waited for the account lock")


async def locked_decision(
    conn: Conn, symbol: str, release: asyncio.Event | None = None
) -> db.DecisionInputs:
    """One decision of ACCOUNT: the one-round-trip read, then its reservation; commits once
    ``release`` is set."""
    async with conn.transaction():
        read = await db.decision_inputs_locked(conn, ACCOUNT, Decimal(50_000), seen_order_ids=())
        assert read.duplicate is None
        assert read.inputs is not None
        await decide(conn, ACCOUNT, read.inputs.trading_day, orders=[order(symbol)])
        if release is not None:
            await release.wait()
    return read.inputs


async def test_two_decisions_on_two_connections_serialize_and_the_second_sees_the_first(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as first, pool.acquire() as second:
        release = asyncio.Event()
        one = asyncio.create_task(locked_decision(first, "AAPL", release))
        # the first holds the lock (its reservation written, not committed)
        deadline = time.monotonic() + 10
        while not await pool.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = $1",
            first.get_server_pid(),
        ):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        two = asyncio.create_task(locked_decision(second, "MSFT"))
        await wait_until_blocked_on_a_lock(pool, second.get_server_pid())
        assert not two.done()
        release.set()
        seen_first, seen_second = await one, await two
    assert (seen_first.reservations.trades_today, seen_first.reservations.in_flight) == (0, [])
    assert seen_second.reservations.trades_today == 1
    assert [o["legs"][0]["symbol"] for o in seen_second.reservations.in_flight] == ["AAPL"]


async def test_it_waits_for_the_lock_protection_writes_and_stops_take(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as writer, pool.acquire() as decider:
        async with writer.transaction():
            await db.lock_account(writer, ACCOUNT)
            waiting = asyncio.create_task(locked_decision(decider, "AAPL"))
            await wait_until_blocked_on_a_lock(pool, decider.get_server_pid())
            # another account is not held up
            async with pool.acquire() as elsewhere, elsewhere.transaction():
                other = await db.decision_inputs_locked(
                    elsewhere, OTHER, Decimal(1), seen_order_ids=()
                )
                assert other.inputs is not None
            assert not waiting.done()
        await waiting


async def test_a_retry_is_found_in_the_same_round_trip_and_nothing_else_is_read(
    pool: asyncpg.Pool,
) -> None:
    async with pool.acquire() as conn:
        day = trading_day(await db.database_now(conn))
        first = await decide(
            conn,
            ACCOUNT,
            day,
            orders=[order("AAPL")],
            detail={"external_identifiers": ["bot-7"], "fingerprint": "f1"},
        )
        await answer(conn, first, ACCOUNT, "accepted", "4001")
        async with conn.transaction():
            read = await db.decision_inputs_locked(
                conn, ACCOUNT, Decimal(1), seen_order_ids=(), client_identifiers=["bot-7"]
            )
        assert read.inputs is None
        assert read.trading_day == day == trading_day(read.now)  # for the retry's own row
        assert read.duplicate is not None
        assert (read.duplicate.decision_id, read.duplicate.outcome) == (first, "accepted")
        assert read.duplicate.broker_order_id == "4001"
        # nothing recorded (no first sight of the day)
        assert await conn.fetchval("SELECT count(*) FROM account_day_start") == 0
        # by fingerprint within the window; another identifier, window off: not a retry
        async with conn.transaction():
            by_body = await db.decision_inputs_locked(
                conn,
                ACCOUNT,
                Decimal(1),
                seen_order_ids=(),
                fingerprint="f1",
                duplicate_window_seconds=60,
            )
        assert by_body.duplicate is not None
        async with conn.transaction():
            fresh = await db.decision_inputs_locked(
                conn, ACCOUNT, Decimal(1), seen_order_ids=(), client_identifiers=["bot-8"]
            )
        assert fresh.duplicate is None
        assert fresh.inputs is not None
        assert fresh.inputs.reservations.trades_today == 1
        # a refused first is no reason to refuse the retry
        await answer(conn, first, ACCOUNT, "unknown")  # (latest now: counted, in flight)
        refused = await decide(
            conn, ACCOUNT, day, orders=[order("MSFT")], detail={"external_identifiers": ["x"]}
        )
        await answer(conn, refused, ACCOUNT, "broker_rejected")
        async with conn.transaction():
            again = await db.decision_inputs_locked(
                conn, ACCOUNT, Decimal(1), seen_order_ids=(), client_identifiers=["x"]
            )
        assert again.duplicate is None
