"""The account lock goes with the decision row's commit (sql/0036): the next decision of the
account reads the ledger as soon as the row is visible, without waiting for an unlock
statement of the gatekeeper's, never before the row is visible; the forwarding locks stay
until the order was sent. Adapter level (gatekeeper.adapters.held_decision), on real
Postgres."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from gatekeeper.adapters import held_decision
from gatekeeper.adapters.held_decision import HeldLocks
from tests.fixtures.audit import decision_row

ACCOUNT = "5WT00091"
_TRY = "SELECT pg_try_advisory_lock(hashtextextended($1 || $2, 0))"
_RECORDED = "SELECT count(*) FROM risk_decisions WHERE decision_id = $1"


@pytest.fixture
async def other(pg_pool: asyncpg.Pool) -> AsyncIterator[Any]:
    """Another session: the next decision's, or a stop's."""
    async with pg_pool.acquire() as conn:
        yield conn
        await conn.execute("SELECT pg_advisory_unlock_all()")


async def _read(conn: Any) -> Any:
    read = await held_decision.read(
        conn,
        ACCOUNT,
        Decimal(100_000),
        seen_order_ids=(),
        day=None,
        net_deposits=Decimal(0),
        state_fetched_at=None,
        client_identifiers=(),
        fingerprint="",
        duplicate_window_seconds=0,
        wait_at_most=5,
    )
    assert read.inputs is not None
    return read


async def _record(conn: Any, read: Any, *, global_stop_mode: str | None = None) -> Any:
    row = decision_row(ACCOUNT, decision_id=uuid.uuid4(), trading_day=read.trading_day)
    recorded = await held_decision.record(
        conn, row, global_stop_mode=global_stop_mode, wait_at_most=5
    )
    return row.decision_id if recorded else None


async def _account_free(conn: Any) -> bool:
    free: bool = await conn.fetchval(_TRY, "gatekeeper.account:", ACCOUNT)
    if free:
        await conn.execute(
            "SELECT pg_advisory_unlock(hashtextextended('gatekeeper.account:' || $1, 0))", ACCOUNT
        )
    return free


async def test_the_commit_lets_the_account_lock_go_and_the_forwarding_locks_stay(
    pg_pool: asyncpg.Pool, other: Any
) -> None:
    async with pg_pool.acquire() as conn:
        read = await _read(conn)
        assert not await _account_free(other)
        async with conn.transaction():  # the row's commit, made visible by a test
            decision_id = await _record(conn, read)
            assert decision_id is not None
            # Not before the commit: the next decision would read a ledger without the row.
            assert not await _account_free(other)
            assert await other.fetchval(_RECORDED, decision_id) == 0
        # At the commit, with no statement of the gatekeeper's in between.
        assert await _account_free(other)
        assert await other.fetchval(_RECORDED, decision_id) == 1
        # The forwarding locks are the session's still: a stop waits for the order's send.
        assert not await other.fetchval(_TRY, "gatekeeper.forwarding:", ACCOUNT)
        await conn.execute("SELECT pg_advisory_unlock_all()")
    assert await other.fetchval(_TRY, "gatekeeper.forwarding:", ACCOUNT)


async def test_a_row_not_recorded_keeps_the_lock_and_a_repeated_read_is_let_go_by_the_engine(
    pg_pool: asyncpg.Pool, other: Any
) -> None:
    conn = await pg_pool.acquire()
    held = HeldLocks(pg_pool, conn, ACCOUNT, set())
    try:
        read = await _read(conn)
        held.account_holds += 1
        # The global stop is not what the read saw: nothing recorded, nothing let go.
        assert await _record(conn, read, global_stop_mode="halt") is None
        assert not await _account_free(other)
        read = await _read(conn)  # read again (the engine's loop): a second hold
        held.account_holds += 1
        assert await _record(conn, read) is not None
        held.account_holds -= 1
        assert not await _account_free(other)  # the commit let one hold go, not both
        held.decided()  # lets the other go
        for _ in range(100):
            if await _account_free(other):
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the account lock was not let go after the decision")
    finally:
        held.release()
        for _ in range(100):
            if await other.fetchval(_TRY, "gatekeeper.forwarding:", ACCOUNT):
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the forwarding locks were not let go")


async def test_a_row_is_never_recorded_without_the_account_lock(
    pg_pool: asyncpg.Pool, other: Any
) -> None:
    # A caller that did not read under the lock (a bug): the function refuses, records
    # nothing and leaves no lock behind; also while another session holds the lock.
    row = decision_row(ACCOUNT)
    async with pg_pool.acquire() as conn:
        with pytest.raises(asyncpg.RaiseError, match="account lock of 5WT00091 is not held"):
            await held_decision.record(conn, row, global_stop_mode=None, wait_at_most=5)
        assert await _account_free(other)
        assert await other.fetchval(_TRY, "gatekeeper.account:", ACCOUNT)  # another holds it
        attempt = asyncio.create_task(
            held_decision.record(conn, row, global_stop_mode=None, wait_at_most=5)
        )
        await asyncio.sleep(0.2)
        await other.execute(
            "SELECT pg_advisory_unlock(hashtextextended('gatekeeper.account:' || $1, 0))", ACCOUNT
        )
        with pytest.raises(asyncpg.RaiseError, match="is not held"):
            await attempt
        assert await _account_free(other)
    assert await other.fetchval(_RECORDED, row.decision_id) == 0
