"""The real client libraries against the paper broker directly (no gatekeeper in between)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import aiohttp
import pytest
import tastytrade.session
from tastytrade import Account
from tastytrade.account import AccountBalance, CurrentPosition, TradingStatus
from tastytrade.market_data import MarketData
from tastytrade.order import (
    PlacedComplexOrderResponse,
    PlacedOrder,
    PlacedOrderResponse,
    PlacedOTOCOOrder,
    UnplacedComplexOrder,
)
from tastytrade.session import Customer

from tests.e2e.sdk_drivers import (
    RESTING_SYMBOL,
    TASTYWARE_WARNING_FILTER,
    DriverError,
    SdkRun,
    run_tastytrade_sdk_async,
    run_tastyware,
)
from tests.fixtures.paper import PaperBroker

SEED_POSITIONS = {
    "TQQQ": Decimal(100),
    "SPY   261218C00600000": Decimal(2),
    "BIL": Decimal(410),
}


def check_run(run: SdkRun, broker: PaperBroker) -> None:
    assert run.account_numbers == [broker.account_number, broker.cash_account_number]
    assert run.net_liquidating_value == Decimal("100000.00")
    assert run.cash_balance == Decimal("60000.00")
    assert run.positions == SEED_POSITIONS
    assert run.placed_status == "Live"
    assert run.live_order_ids == [run.order_id]
    assert run.cancelled_status == "Cancelled"
    assert run.final_status == "Cancelled"
    # A buy of 1 share at 100.00 uses 100.00 of buying power (a debit, negative when signed).
    assert run.dry_run_change_in_buying_power == Decimal("-100.00")
    # What reached the broker: exactly one placed order (dry runs are not logged), now cancelled.
    (entry,) = broker.book.received_orders()
    assert (entry.kind, entry.outcome, entry.order_ids) == ("order", "accepted", [run.order_id])
    order = broker.book.accounts[broker.account_number].orders[run.order_id]
    assert order.status == "Cancelled"
    assert [(leg.symbol, leg.quantity) for leg in order.legs] == [(RESTING_SYMBOL, Decimal(1))]
    assert broker.book.accounts[broker.account_number].cash == Decimal("60000.00")


@pytest.mark.filterwarnings(TASTYWARE_WARNING_FILTER)
@pytest.mark.parametrize("pointing", ["client-attribute", "module-global"])
async def test_tastyware_against_paper_broker(
    paper_broker: PaperBroker, monkeypatch: pytest.MonkeyPatch, pointing: str
) -> None:
    if pointing == "module-global":
        monkeypatch.setattr(tastytrade.session, "API_URL", paper_broker.url)
    run = await run_tastyware(
        paper_broker.url,
        client_secret=paper_broker.client_secret,
        refresh_token=paper_broker.refresh_token,
        account_number=paper_broker.account_number,
        point_client=pointing == "client-attribute",
    )
    check_run(run, paper_broker)
    assert run.quotes == {"AAPL": Decimal("150.00")}
    assert str(paper_broker.book.received_orders()[0].body["source"]).startswith(
        "tastyware/tastytrade"
    )


async def test_tastytrade_sdk_against_paper_broker(paper_broker: PaperBroker) -> None:
    run = await run_tastytrade_sdk_async(
        paper_broker.url,
        login=paper_broker.login,
        password=paper_broker.password,
        account_number=paper_broker.account_number,
    )
    check_run(run, paper_broker)
    # The SDK logged out: its session token no longer works.
    assert all(token.kind == "oauth" for token in paper_broker.book.tokens.values())


@pytest.mark.filterwarnings(TASTYWARE_WARNING_FILTER)
async def test_drivers_report_client_errors(paper_broker: PaperBroker) -> None:
    with pytest.raises(DriverError) as caught:
        await run_tastyware(
            paper_broker.url,
            client_secret="wrong-secret-000",
            refresh_token=paper_broker.refresh_token,
            account_number=paper_broker.account_number,
        )
    assert caught.value.step == "accounts"
    assert "invalid_credentials" in caught.value.message
    with pytest.raises(DriverError) as sdk_caught:
        await run_tastytrade_sdk_async(
            paper_broker.url,
            login=paper_broker.login,
            password="wrong-password",
            account_number=paper_broker.account_number,
        )
    assert (sdk_caught.value.status, sdk_caught.value.code) == (401, "invalid_credentials")
    # An injected 503 on order POSTs surfaces at the first of them, the dry run.
    paper_broker.book.add_fault(
        f"/accounts/{paper_broker.account_number}/orders", status=503, method="POST"
    )
    with pytest.raises(DriverError) as fault_caught:
        await run_tastytrade_sdk_async(
            paper_broker.url,
            login=paper_broker.login,
            password=paper_broker.password,
            account_number=paper_broker.account_number,
        )
    assert (fault_caught.value.step, fault_caught.value.status) == ("dry run", 503)


async def test_tastyware_models_parse_every_paper_payload(
    paper_broker: PaperBroker, paper_http: aiohttp.ClientSession, paper_auth: dict[str, str]
) -> None:
    """Filled, resting, short, complex and quote payloads all satisfy tastyware 13's models."""
    number = paper_broker.account_number

    async def call(method: str, path: str, body: Any = None) -> Any:
        async with paper_http.request(method, path, json=body, headers=paper_auth) as response:
            assert response.status in (200, 201), await response.text()
            return (await response.json())["data"]

    def equity_leg(action: str, quantity: int) -> dict[str, Any]:
        return {
            "instrument-type": "Equity",
            "symbol": "AAPL",
            "action": action,
            "quantity": quantity,
        }

    market = {
        "order-type": "Market",
        "time-in-force": "Day",
        "legs": [equity_leg("Sell to Open", 5)],
    }
    filled = await call("POST", f"/accounts/{number}/orders", market)
    PlacedOrderResponse[PlacedOrder](**filled)
    # tastyware signs by action: a sale at the 149.90 bid reads as -149.90.
    assert PlacedOrder(**filled["order"]).average_fill_price() == Decimal("-149.90")

    def limit(price: str, effect: str, action: str, tif: str = "Day") -> dict[str, Any]:
        return {
            "order-type": "Limit",
            "time-in-force": tif,
            "price": price,
            "price-effect": effect,
            "legs": [equity_leg(action, 1)],
        }

    stop = {
        "order-type": "Stop",
        "time-in-force": "GTC",
        "stop-trigger": "130.00",
        "legs": [equity_leg("Sell to Close", 1)],
    }
    bracket = {
        "type": "OTOCO",
        "trigger-order": limit("140.00", "Debit", "Buy to Open"),
        "orders": [limit("160.00", "Credit", "Sell to Close", "GTC"), stop],
    }
    PlacedComplexOrderResponse[UnplacedComplexOrder](
        **await call("POST", f"/accounts/{number}/complex-orders/dry-run", bracket)
    )
    placed = PlacedComplexOrderResponse[PlacedOTOCOOrder](
        **await call("POST", f"/accounts/{number}/complex-orders", bracket)
    )
    assert placed.complex_order.trigger_order.status.value == "Live"
    assert placed.complex_order.stop_loss.stop_trigger == Decimal("130.00")
    live = await call("GET", f"/accounts/{number}/orders/live")
    assert len([PlacedOrder(**item) for item in live["items"]]) == 4
    positions = [
        CurrentPosition(**item)
        for item in (await call("GET", f"/accounts/{number}/positions"))["items"]
    ]
    aapl = next(p for p in positions if p.symbol == "AAPL")
    assert (aapl.quantity, aapl.quantity_direction) == (Decimal(5), "Short")
    balance = AccountBalance(**await call("GET", f"/accounts/{number}/balances/USD"))
    assert balance.short_equity_value == Decimal("750.00")
    TradingStatus(**await call("GET", f"/accounts/{number}/trading-status"))
    Customer(**await call("GET", "/customers/me"))
    Account(**await call("GET", f"/customers/me/accounts/{number}"))
    quotes = await call(
        "GET", "/market-data/by-type?equity=AAPL&equity-option=SPY%20%20%20261218C00600000"
    )
    assert [MarketData(**item).symbol for item in quotes["items"]] == [
        "AAPL",
        "SPY   261218C00600000",
    ]
