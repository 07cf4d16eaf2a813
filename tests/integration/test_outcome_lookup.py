"""A forwarded order's outcome row costs the same on the first order of the day as after
thousands (sql/0035): the ledger trigger looks up the decision's previous outcome, and for a
first outcome (there is none) that lookup used to walk every outcome ever recorded when the
table's statistics were missing or stale, as they are on a busy morning before autovacuum's
next analyze. Measured in pages Postgres touched, not in time: deterministic on any machine.
"""

from __future__ import annotations

import uuid
from datetime import date

import asyncpg

from gatekeeper.adapters import decisions as db
from tests.fixtures.audit import decision_row

ACCOUNT = "5WT00001"
DAY = date(2026, 3, 9)
HISTORY = 3_000

# Pages of order_outcomes (its heap and every index) this transaction has touched so far.
_PAGES = """
SELECT sum(pg_stat_get_xact_blocks_fetched(c.oid))::bigint
FROM pg_class c
WHERE c.oid = 'order_outcomes'::regclass
   OR c.oid IN (SELECT indexrelid FROM pg_index WHERE indrelid = 'order_outcomes'::regclass)
"""


async def _history(conn: asyncpg.Connection, count: int) -> None:
    """``count`` allowed decisions with their accepted outcomes, each outcome with an answer
    body of a real broker's size (1,280 bytes: without statistics the planner guesses the rows
    per page from the table's size), in one statement (the outcomes' foreign key sees the
    decisions), left unanalyzed: autovacuum is off for the two tables, as it would analyze
    them at a moment of its own choosing."""
    for table in ("risk_decisions", "order_outcomes"):
        await conn.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
    await conn.execute(
        """
        WITH decided AS (
            INSERT INTO risk_decisions
                (decision_id, account_id, route_kind, verdict, message, detail, trading_day,
                 trade_count, reserved_orders, latency_ms)
            SELECT gen_random_uuid(), $1, 'place', 'allow', 'allowed', '{}', $2, 1, '[]', 1
            FROM generate_series(1, $3)
            RETURNING decision_id, account_id
        )
        INSERT INTO order_outcomes (decision_id, account_id, outcome, http_status, answer_body)
        SELECT decision_id, account_id, 'accepted', 201,
               (SELECT string_agg(md5(random()::text || n), '') FROM generate_series(1, 40) n)
        FROM decided
        """,
        ACCOUNT,
        DAY,
        count,
    )


async def _first_outcome_pages(conn: asyncpg.Connection) -> int:
    """Pages of order_outcomes touched to record one new decision's first outcome."""
    row = decision_row(ACCOUNT, decision_id=uuid.uuid4(), trading_day=DAY)
    await db.insert_decision(conn, row)
    async with conn.transaction():
        before = await conn.fetchval(_PAGES) or 0
        await db.insert_outcome(
            conn, row.decision_id, ACCOUNT, "accepted", http_status=201, broker_order_id="42"
        )
        pages: int = (await conn.fetchval(_PAGES) or 0) - before
    return pages


async def test_a_first_outcome_touches_a_few_pages_however_many_outcomes_came_before(
    migrated_conn: asyncpg.Connection,
) -> None:
    conn = migrated_conn
    await _history(conn, 10)
    few = await _first_outcome_pages(conn)
    await _history(conn, HISTORY)
    many = await _first_outcome_pages(conn)
    # Without sql/0035 the trigger's lookup walked the primary key backwards past every
    # outcome: over 600 pages here. With it, a handful of index pages and the new row.
    assert many <= few + 10, f"{few} pages after 10 outcomes, {many} after {HISTORY:,}"
    assert many < 100, many
