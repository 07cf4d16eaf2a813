"""Migration 0030 counts the rows already there: deployed in the middle of a trading day, it
keeps every account's trade count and orders in flight (a fresh count would let a bot trade
past max_daily_trades), and the triggers carry on from there."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest

from gatekeeper.adapters import decisions as db
from gatekeeper.adapters import outcomes
from gatekeeper.adapters.migrations import apply_migrations
from gatekeeper.core.tradingday import trading_day
from tests.fixtures.infra import migrations_before
from tests.integration.test_ledger import (
    ACCOUNT,
    OTHER,
    answer,
    decide,
    ledger_read,
    order,
    recount,
)

VERSION = 30


@pytest.fixture
async def conn(empty_database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(empty_database_url)
    try:
        yield connection
    finally:
        await connection.close()


def previous_version(tmp_path: Path) -> Path:
    """The repository's migrations before 0030, unchanged (same names, same checksums)."""
    return migrations_before(tmp_path, VERSION)


async def test_a_deploy_mid_day_keeps_every_count_and_every_order_in_flight(
    conn: asyncpg.Connection, tmp_path: Path
) -> None:
    await apply_migrations(conn, previous_version(tmp_path))
    now = await db.database_now(conn)
    today = trading_day(now)
    yesterday = today - timedelta(days=1)
    # The morning, written by the release before: every kind of reservation.
    pending = await decide(conn, ACCOUNT, today, orders=[order("AAPL")])
    shown = await decide(conn, ACCOUNT, today, orders=[order("MSFT")])
    await answer(conn, shown, ACCOUNT, "accepted", "3001")
    working = await decide(conn, ACCOUNT, today, trade_count=2, orders=[order("IBM")])
    await answer(conn, working, ACCOUNT, "accepted", "3002")
    refused = await decide(conn, ACCOUNT, today, orders=[order("TSLA")])
    await answer(conn, refused, ACCOUNT, "broker_rejected")
    lost = await decide(conn, ACCOUNT, today, orders=[order("NVDA")])
    await answer(conn, lost, ACCOUNT, "unknown")
    resolved = await decide(conn, ACCOUNT, today, orders=[order("AMD")])
    await answer(conn, resolved, ACCOUNT, "unknown")
    await answer(conn, resolved, ACCOUNT, "not_placed", resolution="not_found")
    await decide(conn, ACCOUNT, today, verdict="reject", trade_count=0)
    await decide(conn, ACCOUNT, today, trade_count=0)  # a dry-run
    other = await decide(conn, OTHER, today, orders=[order("SPY")])
    old = await decide(conn, OTHER, yesterday, orders=[order("QQQ")])
    await answer(conn, old, OTHER, "unknown")
    before = {
        (account, day): await recount(conn, account, day, now=now, seen={"3001"})
        for account in (ACCOUNT, OTHER)
        for day in (today, yesterday)
    }
    assert before[(ACCOUNT, today)][0] == 5

    applied = await apply_migrations(conn)

    assert applied[0].version == VERSION
    for (account, day), (trades, in_flight) in before.items():
        assert await db.trades_today(conn, account, day) == trades, (account, day)
        if day == today:
            read = await ledger_read(conn, account, seen={"3001"})
            assert (read.trades_today, read.in_flight) == (trades, in_flight), account
    unresolved = await outcomes.unresolved_orders(conn, ACCOUNT)
    assert [o["decision_id"] for o in unresolved] == [str(pending), str(lost)]
    claimed = await outcomes.claim_unresolved(conn, "t", grace_seconds=0, lease_seconds=60)
    assert {i.decision_id for i in claimed} == {pending, lost, other, old}
    # and it carries on from the morning's figures
    await decide(conn, ACCOUNT, today, orders=[order("META")])
    await answer(conn, working, ACCOUNT, "unknown")  # a late answer after the accepted one
    await answer(conn, pending, ACCOUNT, "not_sent")
    assert await db.trades_today(conn, ACCOUNT, today) == 5
    trades, in_flight = await recount(conn, ACCOUNT, today, now=now, seen={"3001"})
    read = await ledger_read(conn, ACCOUNT, seen={"3001"})
    assert (read.trades_today, read.in_flight) == (trades, in_flight) == (5, in_flight)
    assert [o["legs"][0]["symbol"] for o in in_flight] == ["IBM", "NVDA", "META"]
