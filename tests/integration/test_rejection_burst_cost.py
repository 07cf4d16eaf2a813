"""The rejection-burst alert's check runs after every rejected order. A runaway bot is
exactly what sends rejection after rejection, so that check must not cost more the more the
bot has been rejected: it reads at most the burst's count of rows, however many rejections
(and other decisions) the window holds."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from gatekeeper.alerts import outbox
from tests.fixtures.decision_rows import record_copies

BOT, OTHER = "5WR00001", "5WR00002"
REJECTIONS = 3_000
COUNT, WINDOW = 10, 60.0


def _decisions_read(plan: Any) -> int:
    """Rows of risk_decisions that the scans of ``plan`` returned or filtered out (EXPLAIN
    ANALYZE, JSON): an index scan's rows, or a bitmap's heap rows, or a sequential scan's."""
    node = plan.get("Plan", plan)
    here = 0
    if node.get("Relation Name") == "risk_decisions":
        here = node["Actual Rows"] + node.get("Rows Removed by Filter", 0)
        here += node.get("Rows Removed by Index Recheck", 0)
    return here + sum(_decisions_read(child) for child in node.get("Plans", []))


async def test_the_burst_check_reads_at_most_the_bursts_count_of_rows(
    pg_pool: asyncpg.Pool,
) -> None:
    async with pg_pool.acquire() as conn:
        await record_copies(conn, BOT, "reject", REJECTIONS)
        await record_copies(conn, OTHER, "reject", REJECTIONS)
        await record_copies(conn, BOT, "allow", REJECTIONS)
        payload = {"trading_day": "2026-12-04", "window_seconds": 60}
        args = (COUNT, BOT, None, WINDOW, json.dumps(payload))
        tx = conn.transaction()
        await tx.start()
        try:  # EXPLAIN ANALYZE runs the INSERT: undone
            explained = await conn.fetchval(
                "EXPLAIN (ANALYZE, FORMAT JSON) " + outbox.REJECTION_BURST, *args
            )
        finally:
            await tx.rollback()
        plan = json.loads(explained)[0]
        assert _decisions_read(plan) <= COUNT, json.dumps(plan, indent=1)
        # and the alert is raised, once, with the threshold it reached
        await outbox.enqueue_rejection_burst(conn, BOT, COUNT, WINDOW, payload)
        await outbox.enqueue_rejection_burst(conn, BOT, COUNT, WINDOW, payload)
        raised = await conn.fetch(
            "SELECT payload FROM alert_events WHERE kind = 'rejection_burst' AND account_id = $1",
            BOT,
        )
        assert [json.loads(r["payload"])["count"] for r in raised] == [COUNT]
