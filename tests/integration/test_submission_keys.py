"""Migration 0033: a retry is found by an index probe per key (order_submission_keys, written
by a trigger beside each allowed decision) instead of a scan of the day's decisions, with the
same answers as the scan gave: deployed mid-day, it finds the decisions recorded before it,
and the ones recorded after. Migration 0034: keys no retry can repeat are pruned."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from gatekeeper.adapters import decisions as db
from gatekeeper.adapters import outcomes
from gatekeeper.adapters.migrations import DEFAULT_SQL_DIR, apply_migrations
from gatekeeper.core.tradingday import trading_day
from gatekeeper.reconciler import Reconciler
from tests.fixtures.gate import make_settings
from tests.fixtures.infra import migrations_before
from tests.integration.test_ledger import ACCOUNT, OTHER, answer, decide, order

VERSION = 33
WINDOW = 30.0


def detail(*identifiers: str, fingerprint: str = "") -> dict[str, Any]:
    return {"external_identifiers": list(identifiers), "fingerprint": fingerprint}


Query = tuple[str, tuple[str, ...], str, float]


async def answers(conn: asyncpg.Connection, queries: list[Query]) -> list[uuid.UUID | None]:
    found = []
    for account, identifiers, fingerprint, window in queries:
        first = await outcomes.find_duplicate(conn, account, identifiers, fingerprint, window)
        found.append(None if first is None else first.decision_id)
    return found


async def test_a_deploy_mid_day_finds_the_same_first_submissions(
    empty_conn: asyncpg.Connection, tmp_path: Path
) -> None:
    conn = empty_conn
    await apply_migrations(conn, migrations_before(tmp_path, VERSION))
    today = trading_day(await db.database_now(conn))
    yesterday, older = today - timedelta(days=1), today - timedelta(days=2)
    o = [order("AAPL")]
    # Written by the release before: what a retry may and may not repeat.
    first = await decide(conn, ACCOUNT, today, orders=o, detail=detail("bot-1", fingerprint="F"))
    await answer(conn, first, ACCOUNT, "accepted", "9001")
    again = await decide(conn, ACCOUNT, today, orders=o, detail=detail("bot-1", fingerprint="F"))
    refused = await decide(conn, ACCOUNT, today, orders=o, detail=detail("bot-2"))
    await answer(conn, refused, ACCOUNT, "broker_rejected")
    lost = await decide(conn, ACCOUNT, yesterday, orders=o, detail=detail("bot-3", "bot-4"))
    await answer(conn, lost, ACCOUNT, "unknown")
    await decide(conn, ACCOUNT, older, orders=o, detail=detail("bot-5"))  # too old
    await decide(conn, ACCOUNT, today, verdict="reject", trade_count=0, detail=detail("bot-6"))
    await decide(conn, ACCOUNT, today, trade_count=0, detail=detail("bot-7"))  # a dry run
    other = await decide(conn, OTHER, today, orders=o, detail=detail("bot-8", fingerprint="F"))
    queries: list[Query] = [
        (ACCOUNT, ("bot-1",), "", 0.0),
        (ACCOUNT, ("x", "bot-1"), "", 0.0),
        (ACCOUNT, ("bot-2",), "", 0.0),
        (ACCOUNT, ("bot-4",), "", 0.0),
        (ACCOUNT, ("bot-5",), "", 0.0),
        (ACCOUNT, ("bot-6",), "", 0.0),
        (ACCOUNT, ("bot-7",), "", 0.0),
        (ACCOUNT, ("bot-8",), "", 0.0),
        (ACCOUNT, (), "F", WINDOW),
        (ACCOUNT, (), "F", 0.0),
        (ACCOUNT, (), "G", WINDOW),
        (ACCOUNT, ("none",), "F", WINDOW),
        (OTHER, ("bot-8",), "", 0.0),
        (OTHER, (), "F", WINDOW),
    ]
    expected = [first, first, None, lost, None, None, None, None, first, None, None, first,
                other, other]  # fmt: skip
    assert await answers(conn, queries) == expected  # the scan's answers, before
    await apply_migrations(conn, DEFAULT_SQL_DIR)
    assert await answers(conn, queries) == expected  # the same by key, after
    assert again != first  # the second is never the answer while the first stands

    # After the deploy: the trigger keys each new allowed decision, and only those.
    new = await decide(conn, OTHER, today, orders=o, detail=detail("bot-9", fingerprint="H"))
    await decide(conn, OTHER, today, verdict="reject", trade_count=0, detail=detail("bot-10"))
    assert await answers(conn, [(OTHER, ("bot-9",), "", 0.0), (OTHER, ("bot-10",), "", 0.0),
                                (OTHER, (), "H", WINDOW), (ACCOUNT, ("bot-9",), "", 0.0)]) == [
        new, None, new, None]  # fmt: skip
    await answer(conn, new, OTHER, "broker_rejected")  # never placed: no longer repeated
    assert await answers(conn, [(OTHER, ("bot-9",), "", 0.0)]) == [None]
    keys = await conn.fetch(
        "SELECT key FROM order_submission_keys k JOIN risk_decisions d ON d.id = k.decision_row_id"
        " WHERE d.decision_id = $1 ORDER BY key",
        new,
    )
    assert [k["key"] for k in keys] == ["fp:H", "id:bot-9"]


async def test_a_fingerprint_repeats_only_within_its_window(empty_conn: asyncpg.Connection) -> None:
    conn = empty_conn
    await apply_migrations(conn, DEFAULT_SQL_DIR)
    today = trading_day(await db.database_now(conn))
    first = await decide(conn, ACCOUNT, today, orders=[order("AAPL")], detail=detail(
        "gk-1", fingerprint="F"))  # fmt: skip
    assert await answers(conn, [(ACCOUNT, (), "F", WINDOW)]) == [first]
    await conn.execute(  # as if decided a minute ago (the key's copy of the decision time)
        "UPDATE order_submission_keys SET decided_at = decided_at - interval '60 seconds'"
    )
    assert await answers(conn, [(ACCOUNT, (), "F", WINDOW), (ACCOUNT, ("gk-1",), "", 0.0)]) == [
        None, first]  # fmt: skip


async def test_keys_no_retry_can_repeat_are_pruned_by_the_reconciler(
    pg_pool: asyncpg.Pool, database_url: str, redis_url: str
) -> None:
    """Migration 0034: keys older than yesterday (New York) are deleted, at the reconciler's
    first pass and hourly after; what a retry may still repeat stays, and so do the
    decisions."""
    async with pg_pool.acquire() as conn:
        today = trading_day(await db.database_now(conn))
        days = {"today": today, "yesterday": today - timedelta(days=1)}
        days |= {"older": today - timedelta(days=2), "last week": today - timedelta(days=7)}
        for name, day in days.items():
            await decide(conn, ACCOUNT, day, orders=[order("AAPL")], detail=detail(name))

    async def kept() -> set[str]:
        rows = await pg_pool.fetch("SELECT key FROM order_submission_keys")
        return {row["key"] for row in rows}

    assert await kept() == {f"id:{name}" for name in days}
    settings = make_settings("http://127.0.0.1:9", database_url, redis_url)
    async with aiohttp.ClientSession() as session:
        reconciler = Reconciler(pg_pool, session, settings)
        task = asyncio.create_task(reconciler.run())
        try:
            deadline = time.monotonic() + 5
            while await kept() != {"id:today", "id:yesterday"}:
                assert time.monotonic() < deadline, await kept()
                await asyncio.sleep(0.05)
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        assert await reconciler.prune() == 0  # nothing left to prune
    assert await pg_pool.fetchval("SELECT count(*) FROM risk_decisions") == 4


async def test_the_application_role_may_prune_and_nothing_else(
    pg_pool: asyncpg.Pool,
) -> None:
    async with pg_pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL ROLE gatekeeper_app")
        assert await conn.fetchval("SELECT prune_order_submission_keys()") == 0
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("DELETE FROM order_submission_keys")
