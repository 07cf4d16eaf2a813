"""The guarded order path through the proxy against the paper broker (seed Steps 4, 8, 9)."""

from __future__ import annotations

import json
import logging
from typing import Any

import asyncpg
import pytest

from tests.fixtures.orders import Bot, order, outcome_row, protect, received_count


async def test_seed_step4_large_limit_order_rejected_with_every_violation(
    bot: Bot, pg_pool: asyncpg.Pool, paper_broker: Any
) -> None:
    await protect(
        pg_pool,
        bot.account,
        cash_reserve_percentage=30,
        max_single_trade_percentage=5,
        max_daily_loss_percentage=3,
    )
    answer = await bot.place(order("AAPL", 1000, "150.00"))
    assert answer.status == 422, answer.body
    error = answer.body["error"]
    assert error["code"] == "risk_check_failed"
    assert "max_single_trade" in answer.codes
    assert "cash_reserve" in answer.codes
    assert "150.00%" in error["message"]
    assert answer.headers["X-Gatekeeper-Decision-Id"]
    assert received_count(paper_broker.book, bot.account) == 0
    rows = await pg_pool.fetch("SELECT verdict, codes FROM risk_decisions")
    assert [(r["verdict"], "max_single_trade" in r["codes"]) for r in rows] == [("reject", True)]


async def test_seed_step8_small_order_passes_and_huge_market_order_is_blocked(
    bot: Bot, pg_pool: asyncpg.Pool, paper_broker: Any
) -> None:
    await protect(pg_pool, bot.account, active=True)
    blocked = await bot.place(order("AAPL", 10000, None))
    assert blocked.status == 422
    assert "max_single_trade" in blocked.codes
    passed = await bot.place(order("AAPL", 1, "150.00"))
    assert passed.status == 201, passed.body
    assert passed.headers["X-Gatekeeper-Decision-Id"]
    assert received_count(paper_broker.book, bot.account) == 1
    outcome = await outcome_row(pg_pool, passed.headers["X-Gatekeeper-Decision-Id"])
    assert outcome["outcome"] == "accepted"
    assert outcome["broker_order_id"] == str(passed.body["data"]["order"]["id"])


async def test_seed_step9_every_decision_logged_once_without_tokens(
    bot: Bot, pg_pool: asyncpg.Pool, caplog: pytest.LogCaptureFixture
) -> None:
    await protect(pg_pool, bot.account)
    caplog.set_level(logging.DEBUG)
    root = logging.getLogger()
    root.setLevel(logging.WARNING)  # as `log_level = "WARNING"` does: decisions still logged
    try:
        await bot.place(order("AAPL", 10, "150.00"))
        await bot.place(order("AAPL", 1000, "150.00"))
    finally:
        root.setLevel(logging.DEBUG)
    lines = [r.getMessage() for r in caplog.records if "RISK_DECISION" in r.getMessage()]
    assert len(lines) == 2
    entries = [json.loads(line.split("RISK_DECISION ", 1)[1]) for line in lines]
    assert [e["verdict"] for e in entries] == ["allow", "reject"]
    assert entries[1]["account"] == bot.account
    assert "max_single_trade" in entries[1]["codes"]
    assert entries[1]["figures"]["order_value"] == "150000.00"
    token = bot.auth["Authorization"].split()[1]
    assert all(token not in line for line in lines)


async def test_dry_run_rejected_the_same_way_and_not_counted(
    bot: Bot, pg_pool: asyncpg.Pool, paper_broker: Any
) -> None:
    await protect(pg_pool, bot.account, max_daily_trades=1)
    rejected = await bot.place(order("AAPL", 1000, "150.00"), dry_run=True)
    assert rejected.status == 422
    assert rejected.body["error"]["code"] == "risk_check_failed"
    for _ in range(3):
        assert (await bot.place(order("AAPL", 1, "150.00"), dry_run=True)).status == 201
    assert (await bot.place(order("AAPL", 1, "150.00"))).status == 201
    second = await bot.place(order("AAPL", 1, "150.00"))
    assert second.status == 422
    assert second.codes == ["max_daily_trades"]
    assert received_count(paper_broker.book, bot.account) == 1


async def test_trade_count_and_stop_survive_a_redis_flush(
    bot: Bot, pg_pool: asyncpg.Pool, redis_client: Any, paper_broker: Any
) -> None:
    protection = await protect(pg_pool, bot.account, max_daily_trades=2)
    for _ in range(2):
        assert (await bot.place(order("AAPL", 1, "150.00"))).status == 201
    await redis_client.flushall()  # the test's own Redis
    answer = await bot.place(order("AAPL", 1, "150.00"))
    assert answer.status == 422
    assert answer.codes == ["max_daily_trades"]
    assert "2 of 2" in answer.body["error"]["message"]
    async with pg_pool.acquire() as conn:
        from gatekeeper.adapters import protections as store
        from gatekeeper.adapters.protection_stops import trigger_emergency_stop

        await trigger_emergency_stop(
            conn,
            protection.id,
            None,
            reason="drill",
            triggered_by="ops",
            mode=None,
            actor=store.Actor("ops", "cli"),
        )
    await redis_client.flushall()
    stopped = await bot.place(order("TQQQ", 1, None, action="Sell to Close"))
    assert stopped.status == 422
    assert "emergency_stop" in stopped.codes
    assert received_count(paper_broker.book, bot.account) == 2


async def test_reduce_only_stop_forwards_verified_close_with_strict_position_effect(
    bot: Bot, pg_pool: asyncpg.Pool, paper_broker: Any
) -> None:
    protection = await protect(pg_pool, bot.account, emergency_stop_mode="reduce_only")
    async with pg_pool.acquire() as conn:
        from gatekeeper.adapters import protections as store
        from gatekeeper.adapters.protection_stops import trigger_emergency_stop

        await trigger_emergency_stop(
            conn,
            protection.id,
            None,
            reason="drill",
            triggered_by="ops",
            mode=None,
            actor=store.Actor("ops", "cli"),
        )
    opening = await bot.place(order("AAPL", 1, "150.00"))
    assert opening.codes == ["emergency_stop"]
    too_big = await bot.place(order("TQQQ", 150, None, action="Sell to Close"))
    assert too_big.status == 422
    assert "emergency_stop" in too_big.codes
    close = order("TQQQ", 100, None, action="Sell to Close", source="bot7")
    answer = await bot.place(close)
    assert answer.status == 201, answer.body
    received = [e for e in paper_broker.book.received_orders() if e.account_number == bot.account]
    assert len(received) == 1
    assert received[0].body["advanced-instructions"] == {"strict-position-effect-validation": True}
    assert received[0].body["source"] == "bot7"


async def test_forwarded_body_is_byte_for_byte_the_checked_one(
    bot: Bot, pg_pool: asyncpg.Pool, paper_broker: Any
) -> None:
    await protect(pg_pool, bot.account)
    raw = (
        b'{"time-in-force":"Day","order-type":"Limit","price":150,"price-effect":"Debit",'
        b'"x-unknown":{"kept":[1,2]},"legs":[{"instrument-type":"Equity","symbol":"AAPL",'
        b'"action":"Buy to Open","quantity":"1"}]}'
    )
    answer = await bot.send("POST", f"/accounts/{bot.account}/orders", raw=raw)
    assert answer.status == 201, answer.body
    received = [e for e in paper_broker.book.received_orders() if e.account_number == bot.account]
    # the one field added: an external-identifier naming the decision (the bot sent none)
    decision_id = answer.headers["X-Gatekeeper-Decision-Id"]
    assert received[0].body == {**json.loads(raw), "external-identifier": f"gk-{decision_id}"}
    # the bot's own is kept, and then nothing at all changes
    own = raw.replace(b'"Day",', b'"Day","external-identifier":"bot7-1",')
    assert (await bot.send("POST", f"/accounts/{bot.account}/orders", raw=own)).status == 201
    received = [e for e in paper_broker.book.received_orders() if e.account_number == bot.account]
    assert received[1].body == json.loads(own)


@pytest.mark.parametrize(
    ("raw", "code", "status"),
    [
        (b'{"order-type": "Limit", "order-type": "Market"}', "invalid_json", 400),
        (b'{"price": NaN}', "invalid_json", 400),
        (b'{"order-type": "Limit", "time-in-force": "Day", "legs": []}', "invalid_order", 400),
        (b"[" * 50 + b"]" * 50, "invalid_json", 400),
        (b'{"pad": "' + b"x" * 70_000 + b'"}', "payload_too_large", 413),
    ],
)
async def test_unparsable_orders_are_rejected_and_recorded(
    bot: Bot, pg_pool: asyncpg.Pool, paper_broker: Any, raw: bytes, code: str, status: int
) -> None:
    answer = await bot.send("POST", f"/accounts/{bot.account}/orders", raw=raw)
    assert answer.status == status, answer.body
    assert answer.body["error"]["code"] == code
    assert answer.codes == [code]
    assert received_count(paper_broker.book, bot.account) == 0
    rows = await pg_pool.fetch("SELECT verdict, codes FROM risk_decisions")
    assert [(r["verdict"], list(r["codes"])) for r in rows] == [("reject", [code])]


async def test_unsupported_order_route_rejected_cancel_and_reads_pass(
    bot: Bot, pg_pool: asyncpg.Pool, paper_broker: Any
) -> None:
    await protect(pg_pool, bot.account)
    weird = await bot.send("POST", f"/accounts/{bot.account}/orders/1/reconfirm", {})
    assert weird.status == 422
    assert weird.codes == ["unsupported_order_route"]
    placed = await bot.place(order("AAPL", 1, "150.00"))
    order_id = placed.body["data"]["order"]["id"]
    assert (await bot.send("GET", f"/accounts/{bot.account}/orders/live")).status == 200
    cancelled = await bot.send("DELETE", f"/accounts/{bot.account}/orders/{order_id}")
    assert cancelled.status == 200
    assert "X-Gatekeeper-Decision-Id" not in cancelled.headers


async def test_replace_is_checked_against_the_replaced_order(
    bot: Bot, pg_pool: asyncpg.Pool, paper_broker: Any
) -> None:
    await protect(pg_pool, bot.account)
    placed = await bot.place(order("AAPL", 10, "100.00"))
    order_id = placed.body["data"]["order"]["id"]
    path = f"/accounts/{bot.account}/orders/{order_id}"
    raised = {
        "order-type": "Limit",
        "time-in-force": "Day",
        "price": "1100.00",
        "price-effect": "Debit",
    }
    rejected = await bot.send("PUT", path, raised)
    assert rejected.status == 422
    assert "max_single_trade" in rejected.codes
    fine = {**raised, "price": "120.00"}
    dry = await bot.send("POST", path + "/dry-run", raised)
    assert dry.status == 422
    assert "max_single_trade" in dry.codes
    assert (await bot.send("PATCH", path, raised)).status == 422
    assert (await bot.send("PUT", path, fine)).status == 200
    missing = await bot.send("PUT", f"/accounts/{bot.account}/orders/999999", fine)
    assert missing.status == 400
    assert missing.codes == ["invalid_order"]


async def test_unknown_account_guarded_by_defaults(bot: Bot, pg_pool: asyncpg.Pool) -> None:
    answer = await bot.place(order("AAPL", 100, None))  # E20: 15,010.00 > 10 %
    assert answer.status == 422
    assert answer.codes == ["max_single_trade"]
    assert "15.01%" in answer.body["error"]["message"]
    row = await pg_pool.fetchrow("SELECT notes FROM risk_decisions")
    assert row is not None
    assert "default_protection" in row["notes"]


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE risk_decisions SET verdict = 'allow'",
        "DELETE FROM risk_decisions",
        "UPDATE order_outcomes SET outcome = 'not_sent'",
        "DELETE FROM account_day_start",
        "TRUNCATE risk_decisions CASCADE",
    ],
)
async def test_audit_tables_are_append_only(
    bot: Bot, pg_pool: asyncpg.Pool, statement: str
) -> None:
    await protect(pg_pool, bot.account)
    placed = await bot.place(order("AAPL", 1, "150.00"))
    assert placed.status == 201
    await outcome_row(pg_pool, placed.headers["X-Gatekeeper-Decision-Id"])  # a row of each
    with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
        await pg_pool.execute(statement)
