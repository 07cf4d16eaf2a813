"""Daily loss: NLV falls past the limit → opening orders rejected and the emergency stop
triggered by `system`; closing orders then follow the stop mode: the protection's, or
reduce_only when it has none (an automatic stop leaves the account flattenable)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from tests.fixtures.orders import Bot, order, protect, received_count, state_shows


@pytest.mark.parametrize(
    ("mode", "effective"),
    [("halt", "halt"), ("reduce_only", "reduce_only"), (None, "reduce_only")],
)
async def test_daily_loss_triggers_the_stop_and_closes_follow_the_mode(
    bot: Bot,
    pg_pool: asyncpg.Pool,
    paper_broker: Any,
    redis_url: str,
    mode: str | None,
    effective: str,
) -> None:
    protection = await protect(pg_pool, bot.account, emergency_stop_mode=mode)
    # The broker's beginning-of-day snapshot, 100,000.00, is recorded as the start of day.
    assert (await bot.place(order("AAPL", 1, "150.00"))).status == 201
    sod = await pg_pool.fetchval("SELECT net_liquidating_value FROM account_day_start")
    assert sod == Decimal("100000.00")
    # BIL (410 held) drops from 83.50 to 70.00: NLV 94,465.00, day P&L -5.54 %.
    paper_broker.book.set_quote("BIL", Decimal("69.99"), Decimal("70.01"))
    await state_shows(redis_url, bot.account, "94465.00")
    answer = await bot.place(order("AAPL", 1, "150.00"))
    assert answer.status == 422
    assert "max_daily_loss" in answer.codes
    assert "-5.54%" in answer.body["error"]["message"]

    row = await pg_pool.fetchrow(
        "SELECT emergency_stop_triggered_by, emergency_stop_reason, emergency_stop_mode,"
        " emergency_stop_active_mode FROM portfolio_protections WHERE id = $1",
        protection.id,
    )
    assert row is not None
    assert row["emergency_stop_triggered_by"] == "system"
    assert "-5.54%" in row["emergency_stop_reason"]
    assert "5.00%" in row["emergency_stop_reason"]
    # The stop's mode is on the row; the protection's own setting is left as it was.
    assert (row["emergency_stop_mode"], row["emergency_stop_active_mode"]) == (mode, effective)
    event = await pg_pool.fetchrow("SELECT event, actor, via, mode FROM emergency_events")
    assert event is not None
    assert tuple(event) == ("triggered", "system", "system", effective)

    opening = await bot.place(order("AAPL", 1, "150.00"))
    assert "emergency_stop" in opening.codes
    close = await bot.place(order("TQQQ", 100, None, action="Sell to Close"))
    oversized = await bot.place(order("TQQQ", 150, None, action="Sell to Close"))
    assert oversized.status == 422
    assert "emergency_stop" in oversized.codes
    received = [e for e in paper_broker.book.received_orders() if e.account_number == bot.account]
    if effective == "halt":
        assert close.status == 422
        assert "emergency_stop" in close.codes
        assert received_count(paper_broker.book, bot.account) == 1
    else:
        assert close.status == 201, close.body
        assert len(received) == 2
        assert received[-1].body["advanced-instructions"] == {
            "strict-position-effect-validation": True
        }


async def test_daily_loss_on_an_account_guarded_by_the_defaults_records_a_lasting_stop(
    bot: Bot, pg_pool: asyncpg.Pool, paper_broker: Any, redis_url: str
) -> None:
    # No protection: the configured defaults (daily loss 5 %) guard the account.
    assert await pg_pool.fetchval("SELECT count(*) FROM portfolio_protections") == 0
    assert (await bot.place(order("AAPL", 1, "150.00"))).status == 201
    paper_broker.book.set_quote("BIL", Decimal("69.99"), Decimal("70.01"))
    await state_shows(redis_url, bot.account, "94465.00")
    breach = await bot.place(order("AAPL", 1, "150.00"))
    assert breach.status == 422
    assert "max_daily_loss" in breach.codes

    # The stop is held by a protection with the default limits, owned by the system user.
    row = await pg_pool.fetchrow(
        "SELECT p.*, u.email FROM portfolio_protections p JOIN users u ON u.id = p.user_id"
    )
    assert row is not None
    assert (row["email"], row["account_id"]) == ("system@gatekeeper.invalid", bot.account)
    assert row["max_daily_loss_percentage"] == Decimal("5.00")
    assert row["emergency_stop_triggered_by"] == "system"
    assert "-5.54%" in row["emergency_stop_reason"]
    # No mode of its own: the automatic stop is reduce_only, so the account can be flattened.
    assert (row["emergency_stop_mode"], row["emergency_stop_active_mode"]) == (None, "reduce_only")
    assert await pg_pool.fetchval("SELECT mode FROM emergency_events") == "reduce_only"
    assert await pg_pool.fetchval("SELECT count(*) FROM emergency_events") == 1

    # The price recovers: the stop still holds until someone clears it.
    paper_broker.book.set_quote("BIL", Decimal("83.49"), Decimal("83.51"))
    after = await bot.place(order("AAPL", 1, "150.00"))
    assert after.status == 422
    assert after.codes == ["emergency_stop"]
    assert received_count(paper_broker.book, bot.account) == 1
    close = await bot.place(order("TQQQ", 100, None, action="Sell to Close"))
    assert close.status == 201, close.body
    assert received_count(paper_broker.book, bot.account) == 2
