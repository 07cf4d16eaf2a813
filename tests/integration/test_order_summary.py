"""Each decision row and RISK_DECISION line carries a short order summary (issue 13, item 2):
symbols, actions, quantities, price and type — what an operator scans for first."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

import asyncpg
import pytest

from tests.fixtures.orders import Bot, order, protect


async def _detail(database_url: str, decision_id: str) -> dict[str, Any]:
    conn = await asyncpg.connect(database_url)
    try:
        raw = await conn.fetchval(
            "SELECT detail FROM risk_decisions WHERE decision_id = $1", UUID(decision_id)
        )
    finally:
        await conn.close()
    detail: dict[str, Any] = json.loads(raw)
    return detail


async def test_allowed_and_rejected_decisions_carry_the_order_summary(
    bot: Bot, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    try:
        await protect(pool, bot.account, max_daily_trades=1)
    finally:
        await pool.close()
    caplog.set_level("INFO", logger="gatekeeper.decisions")
    allowed = await bot.place(order("AAPL", 2, "150.25"))
    rejected = await bot.place(order("MSFT", 3, "300.00", action="Sell to Open"))
    assert allowed.status == 201
    assert rejected.status == 422
    expected = {
        allowed.headers["X-Gatekeeper-Decision-Id"]: ("AAPL", "Buy to Open", "2", "150.25"),
        rejected.headers["X-Gatekeeper-Decision-Id"]: ("MSFT", "Sell to Open", "3", "300.00"),
    }
    lines = [
        json.loads(r.getMessage().removeprefix("RISK_DECISION "))
        for r in caplog.records
        if r.getMessage().startswith("RISK_DECISION ")
    ]
    for decision_id, (symbol, action, quantity, price) in expected.items():
        summary = (await _detail(database_url, decision_id))["summary"]
        assert summary["legs"] == [{"symbol": symbol, "action": action, "quantity": quantity}]
        assert (summary["price"], summary["order_type"]) == (price, "Limit")
        logged = next(line for line in lines if line["decision_id"] == decision_id)
        assert logged["summary"] == summary
