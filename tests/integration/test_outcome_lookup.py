"""A forwarded order's outcome row costs the same on the first order of the day as after
thousands. The ledger trigger looks up the decision and its previous outcome; when the
tables' statistics were missing or stale, as they are on a busy morning before autovacuum's
next analyze, the previous-outcome lookup for a first outcome (there is none) walked every
outcome ever recorded (sql/0035), and the decision's lookup, once the session planned it
generically, every reservation ever recorded (sql/0037). Measured in pages Postgres touched,
not in time: deterministic on any machine.
"""

from __future__ import annotations

import uuid
from datetime import date

import asyncpg
import pytest

from gatekeeper.adapters import decisions as db
from tests.fixtures.audit import decision_row

ACCOUNT = "5WT00001"
DAY = date(2026, 3, 9)
HISTORY = 3_000

# Pages of the two tables (their heaps and every index) this transaction has touched so far.
_PAGES = """
SELECT sum(pg_stat_get_xact_blocks_fetched(c.oid))::bigint
FROM pg_class c
WHERE c.oid IN ('order_outcomes'::regclass, 'risk_decisions'::regclass)
   OR c.oid IN (SELECT indexrelid FROM pg_index
                WHERE indrelid IN ('order_outcomes'::regclass, 'risk_decisions'::regclass))
"""


async def _history(conn: asyncpg.Connection, count: int) -> None:
    """``count`` allowed decisions with their accepted outcomes, in one statement (the
    outcomes' foreign key sees the decisions), each decision's detail and outcome's answer
    body of a real one's size: over a kilobyte (without statistics the planner guesses the
    rows per page from the table's size)."""
    await conn.execute(
        """
        WITH decided AS (
            INSERT INTO risk_decisions
                (decision_id, account_id, route_kind, verdict, message, detail, trading_day,
                 trade_count, reserved_orders, latency_ms)
            SELECT gen_random_uuid(), $1, 'place', 'allow', 'allowed',
                   jsonb_build_object('figures', repeat('x', 1200)), $2, 1, '[]', 1
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
    """Pages of the two tables touched to record one new decision's first outcome."""
    row = decision_row(ACCOUNT, decision_id=uuid.uuid4(), trading_day=DAY)
    await db.insert_decision(conn, row)
    async with conn.transaction():
        before = await conn.fetchval(_PAGES) or 0
        await db.insert_outcome(
            conn, row.decision_id, ACCOUNT, "accepted", http_status=201, broker_order_id="42"
        )
        pages: int = (await conn.fetchval(_PAGES) or 0) - before
    return pages


@pytest.mark.parametrize(
    "plans",
    [
        # Planned for each call's values, on tables grown since their last statistics (a
        # busy morning before autovacuum's next analyze): the case of sql/0035.
        "auto",
        # Planned once, generically, on empty tables, and kept: a gatekeeper's pooled
        # connection after a deployment, and the benchmark's run, where the decision's
        # lookup scanned every reservation by its third round: the case of sql/0037.
        "force_generic_plan",
    ],
)
async def test_a_first_outcome_touches_a_few_pages_however_many_outcomes_came_before(
    migrated_conn: asyncpg.Connection, plans: str
) -> None:
    conn = migrated_conn
    # Autovacuum would analyze at a moment of its own choosing; an ALTER makes the session
    # plan again, so it comes first.
    for table in ("risk_decisions", "order_outcomes"):
        await conn.execute(f"ALTER TABLE {table} SET (autovacuum_enabled = false)")
    await conn.execute(f"SET plan_cache_mode = {plans}")
    few = await _first_outcome_pages(conn)
    await _history(conn, HISTORY)
    many = await _first_outcome_pages(conn)
    # Without sql/0035 the previous-outcome lookup walked the outcomes' primary key backwards
    # past every outcome (over 600 pages here); without sql/0037 the decision's lookup walked
    # the index of every reservation (626 pages). With both, a few index pages each.
    assert many <= few + 10, f"{few} pages on empty tables, {many} after {HISTORY:,} outcomes"
    assert many < 100, many
