"""The refusals' writer (gatekeeper.adapters.refusal_rows): the rows of requests refused
without a rule verdict, committed in batches on a connection of their own, against a real
Postgres. Through the gatekeeper: tests/integration/test_order_deadlines.py (refusals while
every pooled connection is held) and the fault suite's bursts."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from uuid import UUID, uuid4

import asyncpg

from gatekeeper.adapters.refusal_rows import RefusalRow, RefusalRows
from tests.fixtures.audit import problems

ACCOUNTS = ("5WR00003", "5WR00001", "5WR00002")


def _row(account: str, code: str = "overloaded", verdict: str = "error") -> RefusalRow:
    return RefusalRow(
        decision_id=uuid4(),
        account_id=account,
        route_kind="place",
        verdict=verdict,
        codes=[code],
        message=f"{code}: refused",
        detail={"verdict": verdict, "code": code, "summary": {"legs": [{"symbol": "AAPL"}]}},
        replaces_order_id=None,
        latency_ms=1.23456,
    )


async def test_a_burst_of_refusals_is_committed_in_a_few_transactions_each_chain_intact(
    database_url: str, pg_pool: asyncpg.Pool
) -> None:
    writer = RefusalRows(database_url)
    rows = [_row(ACCOUNTS[n % len(ACCOUNTS)]) for n in range(300)]
    try:
        written = await asyncio.gather(*(writer.append(row) for row in rows))
    finally:
        await writer.aclose()
    assert written == [True] * len(rows)
    stored = await pg_pool.fetch(
        "SELECT decision_id, account_id, verdict, codes, notes, message, detail, trade_count,"
        " reserved_orders, latency_ms, trading_day, xmin::text AS tx,"
        " (now() AT TIME ZONE 'America/New_York')::date AS today FROM risk_decisions"
    )
    by_id = {row["decision_id"]: row for row in stored}
    assert set(by_id) == {row.decision_id for row in rows}
    first = by_id[rows[0].decision_id]
    assert (first["account_id"], first["verdict"], list(first["codes"]), list(first["notes"])) == (
        ACCOUNTS[0], "error", ["overloaded"], []
    )  # fmt: skip
    assert (first["trade_count"], first["reserved_orders"], str(first["latency_ms"])) == (
        0, "[]", "1.235"
    )  # fmt: skip
    assert '"summary": {"legs": [{"symbol": "AAPL"}]}' in first["detail"]
    assert first["trading_day"] == first["today"]
    # Group commit: the first row's own transaction, then the rest of the burst in one or two.
    transactions = {row["tx"] for row in stored}
    assert len(transactions) <= 4, len(transactions)
    async with pg_pool.acquire() as conn:
        assert await problems(conn) == []  # every account's chain links up


async def test_a_row_that_fails_does_not_take_its_batch_with_it(
    database_url: str, pg_pool: asyncpg.Pool
) -> None:
    writer = RefusalRows(database_url)
    good = [_row(account) for account in ACCOUNTS]
    bad = _row(ACCOUNTS[0], verdict="allow-ish")  # the table's verdict CHECK refuses it
    try:
        # A first row keeps the writer busy: the next four wait and go in one batch.
        first = asyncio.create_task(writer.append(_row(ACCOUNTS[1])))
        await asyncio.sleep(0)
        written = await asyncio.gather(*(writer.append(row) for row in [good[0], bad, *good[1:]]))
        assert await first
    finally:
        await writer.aclose()
    assert written == [True, False, True, True]
    stored = {row["decision_id"] for row in await pg_pool.fetch("SELECT * FROM risk_decisions")}
    assert {row.decision_id for row in good} <= stored
    assert bad.decision_id not in stored


async def test_a_database_that_cannot_be_reached_fails_within_the_wait(
    unused_tcp_port: int,
) -> None:
    writer = RefusalRows(f"postgresql://postgres@127.0.0.1:{unused_tcp_port}/nowhere")
    started = time.monotonic()
    try:
        written = await writer.append(_row(ACCOUNTS[0]), wait_at_most=0.5)
    finally:
        await writer.aclose()
    assert written is False
    assert time.monotonic() - started < 1.0


async def test_after_closing_nothing_is_appended(database_url: str, pg_pool: asyncpg.Pool) -> None:
    writer = RefusalRows(database_url)
    assert await writer.append(_row(ACCOUNTS[0]))
    await writer.aclose()
    late = _row(ACCOUNTS[0])
    assert await writer.append(late) is False
    decision_ids: list[Any] = [r["decision_id"] for r in await pg_pool.fetch(
        "SELECT decision_id FROM risk_decisions")]  # fmt: skip
    assert len(decision_ids) == 1
    assert isinstance(decision_ids[0], UUID)
