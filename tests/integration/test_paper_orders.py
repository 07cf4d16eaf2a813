"""Paper broker orders over HTTP: shapes, fills and their cash/position math, rejections."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.fixtures.paper import PaperBroker

RECORDED = Path("/work/shared/fixtures/tastytrade-recorded")
SPY_CALL = "SPY   261218C00600000"
QQQ_520C = "QQQ   260116C00520000"
QQQ_530C = "QQQ   260116C00530000"
# Fields tastyware 13 needs to parse a placed order.
ORDER_KEYS = {
    "id", "account-number", "time-in-force", "order-type", "underlying-symbol",
    "underlying-instrument-type", "status", "cancellable", "editable", "edited", "updated-at",
    "legs",
}  # fmt: skip
FEE_KEYS = {
    f"{name}{suffix}"
    for name in (
        "regulatory-fees",
        "clearing-fees",
        "commission",
        "proprietary-index-option-fees",
        "total-fees",
    )
    for suffix in ("", "-effect")
}


def recorded(name: str) -> Any:
    return json.loads((RECORDED / name).read_text())


def leg(symbol: str, action: str, quantity: int | str, kind: str = "Equity") -> dict[str, Any]:
    return {"instrument-type": kind, "symbol": symbol, "action": action, "quantity": quantity}


def limit(price: str, effect: str, *legs: dict[str, Any], tif: str = "Day") -> dict[str, Any]:
    return {
        "order-type": "Limit", "time-in-force": tif, "price": price, "price-effect": effect,
        "legs": list(legs),
    }  # fmt: skip


def market(*legs: dict[str, Any], tif: str = "Day") -> dict[str, Any]:
    return {"order-type": "Market", "time-in-force": tif, "legs": list(legs)}


class Client:
    def __init__(self, http: aiohttp.ClientSession, auth: dict[str, str], account: str) -> None:
        self.http, self.auth, self.account = http, auth, account

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        url = f"/accounts/{self.account}{path}"
        async with self.http.request(method, url, json=body, headers=self.auth) as response:
            return response.status, await response.json()

    async def place(self, body: Any, *, dry_run: bool = False) -> tuple[int, Any]:
        return await self.call("POST", "/orders/dry-run" if dry_run else "/orders", body)

    async def ok(self, method: str, path: str, body: Any = None) -> Any:
        status, data = await self.call(method, path, body)
        assert status in (200, 201), data
        return data["data"]


@pytest.fixture
def client(
    paper_broker: PaperBroker, paper_http: aiohttp.ClientSession, paper_auth: dict[str, str]
) -> Client:
    return Client(paper_http, paper_auth, paper_broker.account_number)


async def test_market_buy_fills_at_ask_with_recorded_shape(
    paper_broker: PaperBroker, client: Client
) -> None:
    status, body = await client.place(market(leg("AAPL", "Buy to Open", 10)))
    assert status == 201
    assert body["context"] == f"/accounts/{paper_broker.account_number}/orders"
    data = body["data"]
    expected = recorded("Post_Submit_Order_Response.json")["data"]
    assert set(data) >= set(expected)
    assert set(data["buying-power-effect"]) == set(expected["buying-power-effect"])
    assert set(data["fee-calculation"]) >= FEE_KEYS
    order = data["order"]
    assert set(order) >= ORDER_KEYS
    assert set(expected["order"]) - {"global-request-id"} <= set(order)
    assert isinstance(order["updated-at"], int)
    assert order["status"] == "Filled"
    assert order["underlying-symbol"] == "AAPL"
    (placed_leg,) = order["legs"]
    assert placed_leg["remaining-quantity"] == 0
    (fill,) = placed_leg["fills"]
    assert Decimal(fill["fill-price"]) == Decimal("150.10")
    assert fill["quantity"] == 10
    bpe = data["buying-power-effect"]
    assert (Decimal(bpe["change-in-buying-power"]), bpe["change-in-buying-power-effect"]) == (
        Decimal("1501.00"),
        "Debit",
    )

    account = paper_broker.book.accounts[paper_broker.account_number]
    assert account.cash == Decimal("58499.00")
    assert account.positions["AAPL"].quantity == Decimal(10)
    assert account.positions["AAPL"].average_open_price == Decimal("150.10")
    # Bought 10 at the ask, valued at the mid: NLV drops by the half-spread.
    balances = await client.ok("GET", "/balances")
    assert Decimal(balances["net-liquidating-value"]) == Decimal("99999.00")
    assert Decimal(balances["cash-balance"]) == Decimal("58499.00")


async def test_resting_limit_order_lifecycle(paper_broker: PaperBroker, client: Client) -> None:
    status, body = await client.place(limit("140.00", "Debit", leg("AAPL", "Buy to Open", 5)))
    assert status == 201
    order = body["data"]["order"]
    assert (order["status"], order["cancellable"], order["editable"]) == ("Live", True, True)
    order_id = order["id"]
    live = await client.ok("GET", "/orders/live")
    assert [item["id"] for item in live["items"]] == [order_id]
    assert (await client.ok("GET", f"/orders/{order_id}"))["status"] == "Live"
    cancelled = await client.ok("DELETE", f"/orders/{order_id}")
    assert cancelled["status"] == "Cancelled"
    assert cancelled["cancellable"] is False
    status, error = await client.call("DELETE", f"/orders/{order_id}")
    assert status == 422
    assert error["error"]["code"] == "cannot_update_order"
    assert paper_broker.book.accounts[paper_broker.account_number].cash == Decimal("60000.00")
    assert (await client.call("GET", "/orders/999999"))[0] == 404


async def test_quote_change_fills_resting_order_and_moves_nlv(
    paper_broker: PaperBroker, paper_http: aiohttp.ClientSession, client: Client
) -> None:
    _, body = await client.place(limit("149.00", "Debit", leg("AAPL", "Buy to Open", 100)))
    order_id = body["data"]["order"]["id"]
    quote = {"bid": "148.80", "ask": "148.90"}
    async with paper_http.put("/__paper/quotes/AAPL", json=quote) as response:
        assert response.status == 200
    order = await client.ok("GET", f"/orders/{order_id}")
    assert order["status"] == "Filled"
    assert Decimal(order["legs"][0]["fills"][0]["fill-price"]) == Decimal("148.90")
    balances = await client.ok("GET", "/balances")
    assert Decimal(balances["cash-balance"]) == Decimal("60000.00") - Decimal("14890.00")
    # 100 AAPL valued at the mid 148.85: NLV = 100,000 - 14,890 + 14,885.
    assert Decimal(balances["net-liquidating-value"]) == Decimal("99995.00")
    # A falling TQQQ quote lowers NLV by 100 x the mid's drop.
    paper_broker.book.set_quote("TQQQ", Decimal("44.30"), Decimal("44.40"))
    balances = await client.ok("GET", "/balances")
    assert Decimal(balances["net-liquidating-value"]) == Decimal("99495.00")


async def test_selling_more_than_held_flips_to_short(
    paper_broker: PaperBroker, client: Client
) -> None:
    status, _ = await client.place(market(leg("TQQQ", "Sell to Close", 150)))
    assert status == 201
    account = paper_broker.book.accounts[paper_broker.account_number]
    assert account.cash == Decimal("60000.00") + Decimal("150") * Decimal("49.30")
    position = account.positions["TQQQ"]
    assert position.quantity == Decimal(-50)
    assert position.average_open_price == Decimal("49.30")
    assert position.realized_today == (Decimal("49.30") - Decimal("45.00")) * 100
    items = (await client.ok("GET", "/positions"))["items"]
    tqqq = next(item for item in items if item["symbol"] == "TQQQ")
    assert (tqqq["quantity"], tqqq["quantity-direction"]) == (50, "Short")
    balances = await client.ok("GET", "/balances")
    assert Decimal(balances["short-equity-value"]) == Decimal("2467.50")
    # Cash 67,395 + BIL 34,235 + call 830 - short 2,467.50.
    assert Decimal(balances["net-liquidating-value"]) == Decimal("99992.50")
    # Buying 50 back closes the position entirely.
    await client.place(market(leg("TQQQ", "Buy to Close", 50)))
    assert "TQQQ" not in account.positions


async def test_option_fill_uses_multiplier_100(paper_broker: PaperBroker, client: Client) -> None:
    status, body = await client.place(
        limit("4.20", "Debit", leg(SPY_CALL, "Buy to Open", 5, "Equity Option"))
    )
    assert status == 201
    assert body["data"]["order"]["status"] == "Filled"
    account = paper_broker.book.accounts[paper_broker.account_number]
    assert account.cash == Decimal("60000.00") - Decimal("2100.00")
    assert account.positions[SPY_CALL].quantity == 7


async def test_spread_rests_then_fills_when_natural_price_reaches_limit(
    paper_broker: PaperBroker, client: Client
) -> None:
    body = limit(
        "2.15", "Debit",
        leg(QQQ_520C, "Buy to Open", 3, "Equity Option"),
        leg(QQQ_530C, "Sell to Open", 3, "Equity Option"),
    )  # fmt: skip
    status, placed = await client.place(body)
    assert status == 201
    order = placed["data"]["order"]
    assert (order["status"], order["size"]) == ("Live", 3)
    assert placed["data"]["buying-power-effect"]["is-spread"] is True
    paper_broker.book.set_quote(QQQ_520C, Decimal("5.85"), Decimal("5.95"))
    account = paper_broker.book.accounts[paper_broker.account_number]
    assert account.orders[order["id"]].status == "Filled"
    assert account.cash == Decimal("60000.00") - Decimal("645.00")
    assert account.positions[QQQ_530C].quantity == -3


async def test_dry_run_changes_nothing(paper_broker: PaperBroker, client: Client) -> None:
    status, body = await client.place(market(leg("AAPL", "Buy to Open", 10)), dry_run=True)
    assert status == 201
    order = body["data"]["order"]
    assert "id" not in order
    assert order["status"] == "Received"
    assert ORDER_KEYS - {"id"} <= set(order)
    account = paper_broker.book.accounts[paper_broker.account_number]
    assert account.orders == {}
    assert account.cash == Decimal("60000.00")
    assert paper_broker.book.received_orders() == []


@pytest.mark.parametrize(
    ("body", "status", "code", "nested"),
    [
        ({"order-type": "Limit", "time-in-force": "Day", "price": "1"}, 400, "validation_error",
         "legs_required"),
        (market(leg("AAPL", "Buy to Open", 0)), 400, "validation_error", "invalid_quantity"),
        (market(leg("AAPL", "Buy to Open", "-3")), 400, "validation_error", "invalid_quantity"),
        (market(leg("AAPL", "Hold", 1)), 400, "validation_error", "invalid_action"),
        (market(leg("SPY 1", "Buy to Open", 1, "Equity Option")), 400, "validation_error",
         "invalid_symbol"),
        ("not an object", 400, "validation_error", None),
        (market(leg("ZZZZ", "Buy to Open", 1)), 422, "preflight_check_failure",
         "quote_unavailable"),
        (market(leg("AAPL", "Buy to Open", 1), tif="GTC"), 422, "preflight_check_failure",
         "gtc_market_orders_not_supported"),
        (limit("150", "Credit", leg("AAPL", "Buy to Open", 1)), 422, "preflight_check_failure",
         "cant_buy_for_credit"),
        ({**market(leg("TQQQ", "Sell to Close", 150)),
          "advanced-instructions": {"strict-position-effect-validation": True}},
         422, "preflight_check_failure", "invalid_position_effect"),
    ],
)  # fmt: skip
async def test_bad_orders_are_rejected_with_envelope(
    paper_broker: PaperBroker, client: Client, body: Any, status: int, code: str, nested: str | None
) -> None:
    got, error = await client.place(body)
    assert got == status
    assert error["error"]["code"] == code
    assert error["error"]["message"]
    if nested is not None:
        assert nested in [item["code"] for item in error["error"]["errors"]]
        assert all(item["message"] for item in error["error"]["errors"])
    assert paper_broker.book.accounts[paper_broker.account_number].orders == {}
    (entry,) = paper_broker.book.received_orders()
    assert entry.outcome == code


async def test_malformed_json_is_a_400(
    paper_broker: PaperBroker, paper_http: aiohttp.ClientSession, paper_auth: dict[str, str]
) -> None:
    headers = {**paper_auth, "Content-Type": "application/json"}
    path = f"/accounts/{paper_broker.account_number}/orders"
    async with paper_http.post(path, data="{nope", headers=headers) as response:
        assert response.status == 400
        assert (await response.json())["error"]["code"] == "validation_error"


async def test_cash_account_preflight(
    paper_broker: PaperBroker, paper_http: aiohttp.ClientSession, paper_auth: dict[str, str]
) -> None:
    cash = Client(paper_http, paper_auth, paper_broker.cash_account_number)
    status, error = await cash.place(market(leg("AAPL", "Buy to Open", 200)))
    assert status == 422
    assert [e["code"] for e in error["error"]["errors"]] == ["insufficient_funds"]
    status, error = await cash.place(
        limit("3.00", "Credit", leg(SPY_CALL, "Sell to Open", 1, "Equity Option"))
    )
    assert status == 422
    assert [e["code"] for e in error["error"]["errors"]] == ["cash_account_short"]
    status, _ = await cash.place(market(leg("AAPL", "Sell to Close", 50)))
    assert status == 201
    assert paper_broker.book.accounts[paper_broker.cash_account_number].positions == {}


async def test_replace_keeps_legs_and_links_orders(
    paper_broker: PaperBroker, client: Client
) -> None:
    _, body = await client.place(limit("140.00", "Debit", leg("AAPL", "Buy to Open", 5)))
    old_id = body["data"]["order"]["id"]
    replaced = await client.ok(
        "PUT",
        f"/orders/{old_id}",
        {"order-type": "Limit", "time-in-force": "Day", "price": "141.00", "price-effect": "Debit"},
    )
    assert replaced["id"] != old_id
    assert replaced["replaces-order-id"] == old_id
    assert replaced["status"] == "Live"
    assert Decimal(replaced["price"]) == Decimal("141.00")
    assert [(x["symbol"], x["action"], x["quantity"]) for x in replaced["legs"]] == [
        ("AAPL", "Buy to Open", 5)
    ]
    old = await client.ok("GET", f"/orders/{old_id}")
    assert (old["status"], old["replacing-order-id"]) == ("Cancelled", replaced["id"])
    # PATCH to a marketable price fills at the ask.
    patched = await client.ok("PATCH", f"/orders/{replaced['id']}", {"price": "151.00"})
    assert patched["status"] == "Filled"
    assert Decimal(patched["legs"][0]["fills"][0]["fill-price"]) == Decimal("150.10")
    status, error = await client.call("PUT", f"/orders/{patched['id']}", {"price": "1.00"})
    assert (status, error["error"]["code"]) == (422, "cannot_update_order")
    kinds = [(entry.kind, entry.outcome) for entry in paper_broker.book.received_orders()]
    assert kinds == [
        ("order", "accepted"), ("replace", "accepted"), ("replace", "accepted"),
        ("replace", "cannot_update_order"),
    ]  # fmt: skip


async def test_ioc_that_cannot_fill_is_cancelled(client: Client) -> None:
    _, body = await client.place(limit("100.00", "Debit", leg("AAPL", "Buy to Open", 1), tif="IOC"))
    assert body["data"]["order"]["status"] == "Cancelled"


async def test_order_search_is_paginated(client: Client) -> None:
    for price in ("140.00", "141.00", "142.00"):
        await client.place(limit(price, "Debit", leg("AAPL", "Buy to Open", 1)))
    status, body = await client.call("GET", "/orders?per-page=2&page-offset=0")
    assert status == 200
    assert len(body["data"]["items"]) == 2
    assert body["pagination"]["total-items"] == 3
    assert body["pagination"]["total-pages"] == 2
    status, body = await client.call("GET", "/orders?per-page=2&page-offset=1")
    assert len(body["data"]["items"]) == 1


async def test_otoco_trigger_releases_children_and_oco_cancels_sibling(
    paper_broker: PaperBroker, client: Client
) -> None:
    body = {
        "type": "OTOCO",
        "trigger-order": limit("150.10", "Debit", leg("AAPL", "Buy to Open", 10)),
        "orders": [
            limit("160.00", "Credit", leg("AAPL", "Sell to Close", 10)),
            {"order-type": "Stop", "time-in-force": "GTC", "stop-trigger": "140.00",
             "legs": [leg("AAPL", "Sell to Close", 10)]},
        ],
    }  # fmt: skip
    status, dry = await client.call("POST", "/complex-orders/dry-run", body)
    assert status == 201
    assert "id" not in dry["data"]["complex-order"]
    status, placed = await client.call("POST", "/complex-orders", body)
    assert status == 201, placed
    complex_order = placed["data"]["complex-order"]
    assert set(placed["data"]) >= {
        "complex-order",
        "buying-power-effect",
        "fee-calculation",
        "warnings",
    }
    assert complex_order["type"] == "OTOCO"
    assert complex_order["trigger-order"]["status"] == "Filled"
    assert [o["status"] for o in complex_order["orders"]] == ["Live", "Live"]
    assert {o["complex-order-id"] for o in complex_order["orders"]} == {complex_order["id"]}
    paper_broker.book.set_quote("AAPL", Decimal("160.00"), Decimal("160.20"))
    after = await client.ok("GET", f"/complex-orders/{complex_order['id']}")
    assert [o["status"] for o in after["orders"]] == ["Filled", "Cancelled"]
    assert "terminal-at" in after
    account = paper_broker.book.accounts[paper_broker.account_number]
    assert account.cash == Decimal("60000.00") - Decimal("1501.00") + Decimal("1600.00")
    assert "AAPL" not in account.positions
    (entry,) = [e for e in paper_broker.book.received_orders() if e.kind == "complex-order"]
    assert len(entry.order_ids) == 3


async def test_oto_children_wait_until_trigger_fills(
    paper_broker: PaperBroker, client: Client
) -> None:
    body = {
        "type": "OTO",
        "trigger-order": limit("145.00", "Debit", leg("AAPL", "Buy to Open", 10)),
        "orders": [limit("160.00", "Credit", leg("AAPL", "Sell to Close", 10))],
    }
    placed = await client.ok("POST", "/complex-orders", body)
    complex_order = placed["complex-order"]
    assert complex_order["trigger-order"]["status"] == "Live"
    assert complex_order["orders"][0]["status"] == "Contingent"
    cancelled = await client.ok("DELETE", f"/complex-orders/{complex_order['id']}")
    assert cancelled["trigger-order"]["status"] == "Cancelled"
    assert cancelled["orders"][0]["status"] == "Cancelled"
    status, error = await client.call("POST", "/complex-orders", {**body, "type": "PAIRS"})
    assert (status, error["error"]["code"]) == (422, "preflight_check_failure")
