"""Issue 9 through the proxy against the paper broker: price collars, unusable quotes refused
by name, notional and conditional orders, quantity caps, collar settings over the admin API."""

from __future__ import annotations

from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.fixtures.orders import Bot, order, protect, received_count


async def test_a_1000_buy_limit_on_a_150_stock_is_refused_by_the_collar(
    bot: Bot, pg_pool: asyncpg.Pool, paper_broker: Any
) -> None:
    await protect(pg_pool, bot.account, max_single_trade_percentage=20)

    answer = await bot.place(order("AAPL", 1, "1000.00"))

    assert answer.status == 422
    assert answer.codes == ["price_collar"]
    assert (
        "AAPL buy above the market: price 1000.00 against the ask 150.10"
        in (answer.body["error"]["message"])
    )
    assert received_count(paper_broker.book, bot.account) == 0


async def test_the_collar_follows_the_protections_setting(
    bot: Bot, pg_pool: asyncpg.Pool, paper_broker: Any
) -> None:
    await protect(pg_pool, bot.account, price_collar_equity_percentage=50)

    assert (await bot.place(order("AAPL", 1, "200.00"), dry_run=True)).status == 201
    assert (await bot.place(order("AAPL", 1, "230.00"), dry_run=True)).codes == ["price_collar"]


@pytest.mark.parametrize(
    ("quote", "reason"),
    [
        ({"bid": "150.00", "ask": "1.50", "crossed": True}, "crossed quote"),
        ({"bid": "0", "ask": "150.10"}, "bid 0.0 is not positive"),
        ({"bid": "10.00", "ask": "250.00"}, "spread 10.00/250.00 is 184.62% of the mid"),
    ],
)
async def test_unusable_quotes_are_refused_by_name(
    bot: Bot,
    pg_pool: asyncpg.Pool,
    paper_http: aiohttp.ClientSession,
    paper_broker: Any,
    quote: dict[str, Any],
    reason: str,
) -> None:
    await protect(pg_pool, bot.account, max_single_trade_percentage=20)
    headers = paper_broker.control_headers
    async with paper_http.put("/__paper/quotes/AAPL", json=quote, headers=headers) as put:
        assert put.status == 200, await put.text()

    answer = await bot.place(order("AAPL", 1, None), dry_run=True)

    assert answer.codes == ["quote_invalid"]
    assert f"AAPL: {reason}" in answer.body["error"]["message"]


def notional(value: str, effect: str, **leg: Any) -> dict[str, Any]:
    return {
        "order-type": "Notional Market",
        "time-in-force": "Day",
        "value": value,
        "value-effect": effect,
        "legs": [{"instrument-type": "Equity", "symbol": "AAPL", "action": "Buy to Open", **leg}],
    }


async def test_notional_orders_are_valued_at_their_value_and_fail_closed_when_inconsistent(
    bot: Bot, pg_pool: asyncpg.Pool
) -> None:
    await protect(pg_pool, bot.account)

    small = await bot.place(notional("1000.00", "Debit"), dry_run=True)
    large = await bot.place(notional("20000.00", "Debit"), dry_run=True)
    credit = await bot.place(notional("1000.00", "Credit"), dry_run=True)
    with_quantity = await bot.place(notional("1.00", "Debit", quantity=10000), dry_run=True)

    # allowed and forwarded: the paper broker itself does not trade Notional Market orders
    assert small.body["error"]["errors"][0]["code"] == "order_type_not_supported", small.body
    verdicts = await pg_pool.fetch("SELECT verdict FROM risk_decisions ORDER BY decided_at")
    assert verdicts[0]["verdict"] == "allow"
    assert large.codes == ["max_single_trade"]
    assert "order value 20,000.00" in large.body["error"]["message"]
    for refused in (credit, with_quantity):
        assert refused.status == 400
        assert refused.body["error"]["code"] == "invalid_order"
    assert "value-effect must be Debit" in credit.body["error"]["message"]
    assert "no quantity" in with_quantity.body["error"]["message"]


def conditional(threshold: str, condition: dict[str, Any] | None = None) -> dict[str, Any]:
    rule = {
        "action": "route",
        "symbol": "AAPL",
        "instrument-type": "Equity",
        "indicator": "last",
        "comparator": "gte",
        "threshold": threshold,
        **(condition or {}),
    }
    return {**order("AAPL", 50, None), "rules": {"conditions": [rule]}}


async def test_a_conditional_order_is_valued_at_its_threshold(
    bot: Bot, pg_pool: asyncpg.Pool
) -> None:
    await protect(pg_pool, bot.account)

    today = await bot.place(order("AAPL", 50, None), dry_run=True)
    at_300 = await bot.place(conditional("300.00"), dry_run=True)
    unknown = await bot.place(conditional("300.00", {"comparator": "crosses"}), dry_run=True)

    assert today.status == 201, today.body
    assert at_300.codes == ["max_single_trade"]
    assert "order value 15,000.00" in at_300.body["error"]["message"]
    assert unknown.status == 400
    assert "rules.conditions" in unknown.body["error"]["message"]


async def test_a_leg_above_the_quantity_cap_is_refused(bot: Bot, pg_pool: asyncpg.Pool) -> None:
    await protect(
        pg_pool, bot.account, max_order_quantity_equity=100, max_single_trade_percentage=20
    )

    answer = await bot.place(order("AAPL", 101, "150.00"), dry_run=True)

    assert answer.codes == ["max_order_quantity"]
    assert "AAPL quantity 101 is above the 100 limit for Equity" in answer.body["error"]["message"]


async def test_collar_settings_over_the_admin_api(admin_api: Any) -> None:
    token = await admin_api.issue("owner@example.com", "admin")
    path = "/api/v1/portfolio_protections"
    body = {"account_id": "5WT00009", "price_collar_equity_percentage": 7.5}
    created = await admin_api.call("POST", path, token, {"portfolio_protection": body})
    assert created.status == 201, created.body
    protection = created.body["portfolio_protection"]
    assert protection["price_collar_equity_percentage"] == "7.50"
    assert protection["max_order_quantity_equity_option"] == 1000

    body = {"account_id": "5WT00008", "price_collar_future_percentage": 25}
    refused = await admin_api.call("POST", path, token, {"portfolio_protection": body})
    assert refused.status == 422
    assert "price_collar_future_percentage" in str(refused.body)
    assert not await admin_api.fetch(
        "SELECT 1 FROM portfolio_protections WHERE account_id = '5WT00008'"
    )


async def restrict(paper_http: aiohttp.ClientSession, paper_broker: Any, **flags: bool) -> None:
    body = {key.replace("_", "-"): value for key, value in flags.items()}
    path = f"/__paper/accounts/{paper_broker.account_number}/trading-status"
    async with paper_http.put(path, json=body, headers=paper_broker.control_headers) as put:
        assert put.status == 200, await put.text()


async def test_a_closing_only_account_accepts_only_risk_reducing_orders(
    bot: Bot, pg_pool: asyncpg.Pool, paper_http: aiohttp.ClientSession, paper_broker: Any
) -> None:
    await protect(pg_pool, bot.account)
    await restrict(paper_http, paper_broker, is_closing_only=True)

    opening = await bot.place(order("AAPL", 1, "150.00"))
    closing = await bot.place(order("TQQQ", 100, None, action="Sell to Close"))

    assert opening.codes == ["account_closing_only"]
    assert closing.status == 201, closing.body
    assert received_count(paper_broker.book, bot.account) == 1


async def test_a_frozen_account_takes_nothing_even_without_a_protection(
    bot: Bot, paper_http: aiohttp.ClientSession, paper_broker: Any
) -> None:
    await restrict(paper_http, paper_broker, is_frozen=True)

    closing = await bot.place(order("TQQQ", 100, None, action="Sell to Close"))

    assert closing.codes == ["account_restricted"]
    assert "the broker reports the account frozen" in closing.body["error"]["message"]
    assert received_count(paper_broker.book, bot.account) == 0


async def test_a_margin_call_refuses_opening_orders(
    bot: Bot, pg_pool: asyncpg.Pool, paper_http: aiohttp.ClientSession, paper_broker: Any
) -> None:
    await protect(pg_pool, bot.account)
    await restrict(paper_http, paper_broker, is_in_margin_call=True)

    assert (await bot.place(order("AAPL", 1, "150.00"))).codes == ["account_margin_call"]
