"""Reading the decision log from Postgres: filters, keyset pages, outcomes and summaries."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID, uuid4

import asyncpg

from gatekeeper.adapters import decisions as db
from gatekeeper.adapters.decision_log import get_decision, list_decisions
from tests.fixtures.decision_rows import RESERVED, SUMMARY, record


async def test_filters_combine_and_the_newest_comes_first(pg_pool: asyncpg.Pool) -> None:
    async with pg_pool.acquire() as conn:
        allowed = await record(conn)
        rejected = await record(conn, verdict="reject", codes=("max_single_trade", "cash_reserve"))
        other = await record(conn, "5WT00002", verdict="reject", codes=("cash_reserve",))

        everything = await list_decisions(
            conn, account_id=None, since=None, verdict=None, code=None
        )
        mine = await list_decisions(
            conn, account_id="5WT00001", since=None, verdict=None, code=None
        )
        refused = await list_decisions(
            conn, account_id=None, since=None, verdict="reject", code="cash_reserve"
        )
        single = await list_decisions(
            conn, account_id="5WT00001", since=None, verdict=None, code="max_single_trade"
        )

    assert [d.decision_id for d in everything] == [other, rejected, allowed]
    assert [d.decision_id for d in mine] == [rejected, allowed]
    assert [d.decision_id for d in refused] == [other, rejected]
    assert [d.decision_id for d in single] == [rejected]
    assert single[0].codes == ["max_single_trade", "cash_reserve"]
    assert single[0].figures == {"net_liquidating_value": "100000"}


async def test_since_and_until_bound_the_period(pg_pool: asyncpg.Pool) -> None:
    async with pg_pool.acquire() as conn:
        first = await record(conn)
        [item] = await list_decisions(conn, account_id=None, since=None, verdict=None, code=None)
        later = item.decided_at + timedelta(microseconds=1)

        since_later = await list_decisions(
            conn, account_id=None, since=later, verdict=None, code=None
        )
        until_later = await list_decisions(
            conn, account_id=None, since=None, until=later, verdict=None, code=None
        )
        until_then = await list_decisions(
            conn, account_id=None, since=None, until=item.decided_at, verdict=None, code=None
        )

    assert since_later == []
    assert [d.decision_id for d in until_later] == [first]
    assert until_then == []  # until is exclusive


async def test_pages_follow_the_id_without_gaps_or_repeats(pg_pool: asyncpg.Pool) -> None:
    async with pg_pool.acquire() as conn:
        recorded = [await record(conn) for _ in range(7)]
        pages: list[list[UUID]] = []
        before: int | None = None
        while True:
            page = await list_decisions(
                conn, account_id=None, since=None, verdict=None, code=None, limit=3,
                before_id=before,
            )  # fmt: skip
            if not page:
                break
            pages.append([d.decision_id for d in page])
            before = page[-1].id

    assert [len(page) for page in pages] == [3, 3, 1]
    assert [d for page in pages for d in page] == recorded[::-1]


async def test_the_latest_outcome_wins_and_an_unanswered_placement_is_pending(
    pg_pool: asyncpg.Pool,
) -> None:
    async with pg_pool.acquire() as conn:
        pending = await record(conn)
        resolved = await record(conn)
        account = "5WT00001"
        await db.insert_outcome(conn, resolved, account, "unknown", http_status=None,
                                broker_order_id=None)  # fmt: skip
        await db.insert_outcome(conn, resolved, account, "accepted", http_status=None,
                                broker_order_id="12345",
                                resolution="external_identifier")  # fmt: skip
        dry_run = await record(conn, trade_count=0)
        rejected = await record(conn, verdict="reject", codes=("cash_reserve",))

        by_id = {
            d.decision_id: d
            for d in await list_decisions(
                conn, account_id=None, since=None, verdict=None, code=None
            )
        }
        full = await get_decision(conn, resolved)

    assert by_id[pending].outcome == "pending"
    assert (by_id[resolved].outcome, by_id[resolved].broker_order_id) == ("accepted", "12345")
    assert by_id[dry_run].outcome is None
    assert by_id[rejected].outcome is None
    assert full is not None
    assert [o["outcome"] for o in full["outcomes"]] == ["unknown", "accepted"]
    assert full["outcomes"][1]["resolution"] == "external_identifier"
    assert (full["outcome"], full["broker_order_id"]) == ("accepted", "12345")


async def test_summaries_come_from_the_row_or_from_older_rows_reserved_orders(
    pg_pool: asyncpg.Pool,
) -> None:
    async with pg_pool.acquire() as conn:
        current = await record(conn)
        older = await record(conn, summary=None, reserved=[RESERVED])
        unreadable = await record(conn, verdict="reject", codes=("invalid_order",), summary=None)

        by_id = {
            d.decision_id: d
            for d in await list_decisions(
                conn, account_id=None, since=None, verdict=None, code=None
            )
        }
        older_full = await get_decision(conn, older)

    assert by_id[current].summary == SUMMARY
    assert by_id[older].summary["legs"] == [
        {"symbol": "F", "action": "Buy to Open", "quantity": "5"}
    ]
    assert by_id[older].summary["price"] == "20.00"
    assert by_id[unreadable].summary == {}
    assert older_full is not None
    assert older_full["summary"] == by_id[older].summary


async def test_one_decision_in_full_and_an_unknown_one(pg_pool: asyncpg.Pool) -> None:
    async with pg_pool.acquire() as conn:
        decision_id = await record(conn, verdict="reject", codes=("cash_reserve",))
        full = await get_decision(conn, decision_id)
        missing = await get_decision(conn, uuid4())

    assert missing is None
    assert full is not None
    assert full["decision_id"] == decision_id
    assert full["verdict"] == "reject"
    assert full["codes"] == ["cash_reserve"]
    assert full["detail"]["summary"] == SUMMARY
    assert full["summary"] == SUMMARY
    assert full["figures"] == {"net_liquidating_value": "100000"}
    assert full["outcomes"] == []
    assert full["outcome"] is None


async def test_accounts_restricts_the_list_to_those_accounts(pg_pool: asyncpg.Pool) -> None:
    async with pg_pool.acquire() as conn:
        mine = await record(conn, "5WT00001")
        await record(conn, "5WT00002")
        listed = await list_decisions(
            conn, account_id=None, since=None, verdict=None, code=None, accounts=["5WT00001"]
        )
        none = await list_decisions(
            conn, account_id=None, since=None, verdict=None, code=None, accounts=[]
        )

    assert [d.decision_id for d in listed] == [mine]
    assert none == []
