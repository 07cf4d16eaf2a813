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


async def _ended_by_the_server(pg_pool: asyncpg.Pool, conn: Any, other: Any) -> None:
    """The server ends ``conn``'s session (Postgres restarted or killed); asyncpg notices,
    closes the connection and gives it back to the pool itself."""
    await other.execute("SELECT pg_terminate_backend($1)", conn.get_server_pid())
    for _ in range(500):
        try:
            if conn.is_closed():
                return
        except asyncpg.InterfaceError:  # closed, and already given back to the pool
            return
        await asyncio.sleep(0.01)
    raise AssertionError("asyncpg did not notice the session's end")


async def test_a_session_the_server_ended_is_let_go_quietly(
    pg_pool: asyncpg.Pool, other: Any
) -> None:
    # Found by the soak: Postgres killed while a decision held its connection. Letting the
    # locks go then failed on the connection asyncpg had already given back to the pool, and
    # closing it failed again: a background task's exception nobody retrieves.
    conn = await pg_pool.acquire()
    tasks: set[asyncio.Task[None]] = set()
    held = HeldLocks(pg_pool, conn, ACCOUNT, tasks)
    await _read(conn)
    held.account_holds += 1
    await _ended_by_the_server(pg_pool, conn, other)

    held.release()
    done = list(tasks)
    assert done  # the release runs in the background
    for outcome in await asyncio.gather(*done, return_exceptions=True):
        assert outcome is None  # nothing raised, nothing left unretrieved
    assert await _account_free(other)  # the server let the locks go with the session
    async with pg_pool.acquire(timeout=5) as fresh:  # and the pool still serves
        assert await fresh.fetchval("SELECT 1") == 1


async def test_an_outcome_on_a_session_the_server_ended_raises_the_database_s_error(
    pg_pool: asyncpg.Pool, other: Any
) -> None:
    conn = await pg_pool.acquire()
    held = HeldLocks(pg_pool, conn, ACCOUNT, set())
    await _read(conn)
    held.account_holds += 1
    await _ended_by_the_server(pg_pool, conn, other)

    # The caller logs what failed: the connection's loss, not a second error of closing it.
    with pytest.raises(asyncpg.InterfaceError, match="released back to the pool") as raised:
        await held.outcome_then_release(uuid.uuid4(), ACCOUNT, "accepted", 201, "1", "{}")
    assert "terminate" not in str(raised.value)
    assert await _account_free(other)
    async with pg_pool.acquire(timeout=5) as fresh:
        assert await fresh.fetchval("SELECT 1") == 1
