"""validate_trade and status through the admin API against the paper broker (seed Steps 3, 4,
8, 9, 10): the proxy's engine, without forwarding."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.fixtures.admin import AdminApi, Issued
from tests.fixtures.gate import make_settings, start_gatekeeper
from tests.fixtures.orders import Bot, order

BASE = "/api/v1/portfolio_protections"


@pytest.fixture
async def paper_admin(
    paper_broker: Any, database_url: str, redis_url: str, pg_pool: asyncpg.Pool
) -> AsyncIterator[AdminApi]:
    settings = make_settings(paper_broker.url, database_url, redis_url)
    async with start_gatekeeper(settings) as gate, aiohttp.ClientSession() as session:
        yield AdminApi(gate.admin_url, gate, pg_pool, session, database_url)


async def _protect(api: AdminApi, admin: Issued, account: str, **settings: Any) -> int:
    body = {"portfolio_protection": {"account_id": account, **settings}}
    created = await api.call("POST", BASE, admin, body)
    assert created.status == 201, created.body
    protection_id: int = created.body["portfolio_protection"]["id"]
    return protection_id


async def test_seed_steps_4_and_8_through_validate_trade(
    paper_admin: AdminApi, paper_broker: Any, paper_auth: dict[str, str]
) -> None:
    admin = await paper_admin.issue("risk-test@example.com", "admin")
    account = paper_broker.account_number
    await _protect(
        paper_admin, admin, account,
        cash_reserve_percentage=30.0, max_single_trade_percentage=5.0,
        max_daily_loss_percentage=3.0,
    )  # fmt: skip
    broker = {"X-Broker-Authorization": paper_auth["Authorization"]}
    step4 = {
        "account_id": account,
        "order": {"symbol": "AAPL", "quantity": 1000, "order_type": "limit",
                  "action": "buy-to-open", "price": 150.00, "time_in_force": "day"},
    }  # fmt: skip
    rejected = await paper_admin.call("POST", f"{BASE}/validate_trade", admin, step4,
                                      headers=broker)  # fmt: skip
    assert rejected.status == 200, rejected.body
    assert rejected.body["valid"] is False
    codes = [v["code"] for v in rejected.body["violations"]]
    assert codes[:2] == ["max_single_trade", "cash_reserve"]
    assert "150.00%" in rejected.body["violations"][0]["message"]

    huge_market = {
        "account_id": account,
        "order": {"symbol": "AAPL", "quantity": 10000, "order_type": "market",
                  "action": "buy-to-open", "time_in_force": "day"},
    }  # fmt: skip
    blocked = await paper_admin.call("POST", f"{BASE}/validate_trade", admin, huge_market)
    assert blocked.body["valid"] is False  # state cached from the previous call

    one_share = {"account_id": account, "order": order("AAPL", 1, "150.00")}
    passed = await paper_admin.call("POST", f"{BASE}/validate_trade", admin, one_share)
    assert passed.body["valid"] is True, passed.body
    assert paper_broker.book.received_orders() == []  # nothing was forwarded

    rows = await paper_admin.fetch("SELECT route_kind, trade_count FROM risk_decisions")
    assert {(r["route_kind"], r["trade_count"]) for r in rows} == {("validate_trade", 0)}


async def test_status_shows_todays_figures(
    paper_admin: AdminApi, paper_broker: Any, paper_auth: dict[str, str]
) -> None:
    admin = await paper_admin.issue("risk-test@example.com", "admin")
    account = paper_broker.account_number
    await _protect(paper_admin, admin, account, max_daily_trades=7)
    async with aiohttp.ClientSession() as session:
        bot = Bot(paper_admin.gate.proxy_url, paper_auth, session, account)
        assert (await bot.place(order("AAPL", 10, "150.00"))).status == 201
    status = await paper_admin.call("GET", f"{BASE}/status?account_id={account}", admin)
    today = status.body["today"]
    assert today["trades_today"] == 1
    assert today["max_daily_trades"] == 7
    assert Decimal(today["start_of_day_nlv"]) == Decimal(100000)
    assert Decimal(today["nlv"]) == Decimal(100000)
    assert Decimal(today["exposure_after_pct"]) == Decimal("41.5")  # 40,000 + 1,500
    assert today["largest_concentration_underlying"] == "AAPL"
    assert today["last_verdict"] == "allow"


async def test_seed_step3_stop_blocks_the_proxy_until_cleared(
    paper_admin: AdminApi, paper_broker: Any, paper_auth: dict[str, str]
) -> None:
    admin = await paper_admin.issue("risk-test@example.com", "admin")
    account = paper_broker.account_number
    protection_id = await _protect(paper_admin, admin, account)
    stop = {"reason": "Test emergency stop", "triggered_by": "test_user"}
    stopped = await paper_admin.call("POST", f"{BASE}/{protection_id}/emergency_stop", admin, stop)
    assert stopped.status == 200, stopped.body
    async with aiohttp.ClientSession() as session:
        bot = Bot(paper_admin.gate.proxy_url, paper_auth, session, account)
        blocked = await bot.place(order("AAPL", 1, "150.00"))
        assert blocked.status == 422
        assert blocked.codes == ["emergency_stop"]
        clear = {"confirm": "true", "cleared_by": "test_user"}
        cleared = await paper_admin.call(
            "DELETE", f"{BASE}/{protection_id}/clear_emergency_stop", admin, clear
        )
        assert cleared.status == 200, cleared.body
        assert (await bot.place(order("AAPL", 1, "150.00"))).status == 201
    assert len(paper_broker.book.received_orders()) == 1


async def test_seed_step10_safety_check(
    paper_admin: AdminApi, paper_broker: Any, paper_auth: dict[str, str]
) -> None:
    admin = await paper_admin.issue("risk-test@example.com", "admin")
    account = paper_broker.account_number
    await _protect(paper_admin, admin, account)
    bad = {"portfolio_protection": {"account_id": "TEST999", "cash_reserve_percentage": 10.0}}
    assert (await paper_admin.call("POST", BASE, admin, bad)).status == 422
    huge = {
        "account_id": account,
        "order": {"symbol": "TEST", "quantity": 999999, "order_type": "market",
                  "action": "buy-to-open"},
    }  # fmt: skip
    broker = {"X-Broker-Authorization": paper_auth["Authorization"]}
    checked = await paper_admin.call("POST", f"{BASE}/validate_trade", admin, huge, headers=broker)
    assert checked.status == 200, checked.body
    assert checked.body["valid"] is False
    # no quote for TEST, and 999,999 shares is above the 50,000 fat-finger cap (issue 9)
    assert [v["code"] for v in checked.body["violations"]] == [
        "price_unavailable",
        "max_order_quantity",
    ]
    async with aiohttp.ClientSession() as session:
        bot = Bot(paper_admin.gate.proxy_url, paper_auth, session, account)
        through_proxy = await bot.place(order("TEST", 999999, None))
    assert through_proxy.codes == ["price_unavailable", "max_order_quantity"]
    assert paper_broker.book.received_orders() == []
