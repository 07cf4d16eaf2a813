"""Paper broker futures and future options: fills at quote, margined cash, positions.

Seed: account 5WT00001 (cash 60000, NLV 100000); /ESZ6 5005.00 x 5005.25, /MESZ6 the same,
./ESZ6 E3AZ6 261218P4900 12.25 x 12.75. A future moves cash only by realized P&L and NLV by
its open P&L; a future option is paid for like an equity option, times 50.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from tastytrade.account import AccountBalance, CurrentPosition
from tastytrade.market_data import MarketData
from tastytrade.order import PlacedOrder, PlacedOrderResponse, UnplacedOrder
from yarl import URL

from tests.fixtures.paper import PaperBroker

ES = "/ESZ6"
MES = "/MESZ6"
ES_PUT = "./ESZ6 E3AZ6 261218P4900"
D = Decimal


def leg(symbol: str, action: str, quantity: int | str, kind: str = "Future") -> dict[str, Any]:
    return {"instrument-type": kind, "symbol": symbol, "action": action, "quantity": quantity}


def market(*legs: dict[str, Any]) -> dict[str, Any]:
    return {"order-type": "Market", "time-in-force": "Day", "legs": list(legs)}


def limit(price: str, effect: str, *legs: dict[str, Any]) -> dict[str, Any]:
    return {**market(*legs), "order-type": "Limit", "price": price, "price-effect": effect}


class Broker:
    """The seed user's view of one account, plus the quote control."""

    def __init__(self, http: aiohttp.ClientSession, auth: dict[str, str], account: str) -> None:
        self.http, self.auth, self.account = http, auth, account

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with self.http.request(
            method, URL(path, encoded=True), json=body, headers=self.auth
        ) as response:
            return response.status, await response.json()

    async def ok(self, method: str, path: str, body: Any = None) -> Any:
        status, data = await self.call(method, path, body)
        assert status in (200, 201), data
        return data["data"]

    async def place(self, body: Any, *, dry_run: bool = False) -> Any:
        suffix = "/dry-run" if dry_run else ""
        return await self.ok("POST", f"/accounts/{self.account}/orders{suffix}", body)

    async def balances(self) -> AccountBalance:
        return AccountBalance(**await self.ok("GET", f"/accounts/{self.account}/balances"))

    async def positions(self) -> dict[str, CurrentPosition]:
        data = await self.ok("GET", f"/accounts/{self.account}/positions")
        return {item["symbol"]: CurrentPosition(**item) for item in data["items"]}

    async def quote(self, encoded_symbol: str, bid: str, ask: str) -> Any:
        return await self.ok("PUT", f"/__paper/quotes/{encoded_symbol}", {"bid": bid, "ask": ask})


@pytest.fixture
def broker(
    paper_broker: PaperBroker, paper_http: aiohttp.ClientSession, paper_auth: dict[str, str]
) -> Broker:
    return Broker(paper_http, paper_auth, paper_broker.account_number)


async def test_future_round_trip_moves_cash_by_realized_pnl_only(broker: Broker) -> None:
    buy = market(leg(ES, "Buy", 2))
    dry = PlacedOrderResponse[UnplacedOrder](**await broker.place(buy, dry_run=True))
    # What a futures order ties up is margin: 5 % of 2 x 5005.25 x 50.
    assert dry.buying_power_effect.change_in_buying_power == D("-25026.25")

    placed = await broker.place(buy)
    order = PlacedOrder(**placed["order"])
    assert order.status.value == "Filled"
    assert (order.underlying_symbol, order.underlying_instrument_type.value) == ("/ES", "Future")
    assert placed["order"]["legs"][0]["fills"][0]["fill-price"] == "5005.25"

    position = (await broker.positions())[ES]
    assert position.instrument_type.value == "Future"
    assert (position.underlying_symbol, position.multiplier) == ("/ES", D(50))
    assert (position.quantity, position.quantity_direction) == (D(2), "Long")
    assert position.average_open_price == D("5005.25")
    balances = await broker.balances()
    assert balances.cash_balance == D(60000)
    # Open P&L at the 5005.125 mark: -0.125 x 2 x 50.
    assert balances.net_liquidating_value == D("99987.50")
    assert balances.long_futures_value == D("500512.50")
    assert balances.futures_margin_requirement == D("25025.625")

    await broker.quote("%2FESZ6", "5015.00", "5015.25")
    assert (await broker.balances()).net_liquidating_value == D("100987.50")

    await broker.place(market(leg(ES, "Sell", 2)))
    assert ES not in await broker.positions()
    balances = await broker.balances()
    # Realized (5015.00 - 5005.25) x 2 x 50 = 975 lands in cash.
    assert balances.cash_balance == D(60975)
    assert balances.net_liquidating_value == D(100975)


async def test_micro_future_multiplier_and_open_close_actions(broker: Broker) -> None:
    await broker.place(market(leg(MES, "Sell to Open", 3)))
    position = (await broker.positions())[MES]
    assert (position.multiplier, position.quantity_direction) == (D(5), "Short")
    assert position.underlying_symbol == "/MES"
    # Short 3 at the 5005.00 bid, marked at 5005.125: -0.125 x 3 x 5.
    assert (await broker.balances()).net_liquidating_value == D("99998.125")
    await broker.place(market(leg(MES, "Buy to Close", 3)))
    # Bought back at the 5005.25 ask: realized -0.25 x 3 x 5.
    assert (await broker.balances()).cash_balance == D("59996.25")


async def test_resting_future_limit_fills_when_the_quote_moves(broker: Broker) -> None:
    before = (await broker.balances()).derivative_buying_power
    placed = await broker.place(limit("5000.00", "Debit", leg(ES, "Buy", 1)))
    assert placed["order"]["status"] == "Live"
    # The working order reserves its margin: 5 % of 5000 x 50.
    assert (await broker.balances()).derivative_buying_power == before - D(12500)
    await broker.quote("%2FESZ6", "4999.50", "4999.75")
    order = await broker.ok("GET", f"/accounts/{broker.account}/orders/{placed['order']['id']}")
    assert order["status"] == "Filled"
    assert order["legs"][0]["fills"][0]["fill-price"] == "4999.75"


async def test_future_option_quote_and_fill(broker: Broker) -> None:
    quotes = await broker.ok(
        "GET", "/market-data/by-type?future=%2FESZ6&future-option=.%2FESZ6%20E3AZ6%20261218P4900"
    )
    parsed = {q.symbol: q for q in (MarketData(**item) for item in quotes["items"])}
    assert (parsed[ES_PUT].bid, parsed[ES_PUT].ask) == (D("12.25"), D("12.75"))
    assert parsed[ES_PUT].instrument_type.value == "Future Option"

    placed = await broker.place(
        limit("13.00", "Debit", leg(ES_PUT, "Buy to Open", 1, "Future Option"))
    )
    assert placed["order"]["status"] == "Filled"
    assert placed["order"]["underlying-symbol"] == "/ESZ6"
    position = (await broker.positions())[ES_PUT]
    assert position.instrument_type.value == "Future Option"
    assert (position.underlying_symbol, position.multiplier) == ("/ESZ6", D(50))
    balances = await broker.balances()
    # Paid like an option: 12.75 x 50; worth its 12.50 mark x 50.
    assert balances.cash_balance == D("59362.50")
    assert balances.long_derivative_value == D("1455.00")  # with the seeded SPY calls (830)
    assert balances.net_liquidating_value == D("99987.50")


async def test_equity_option_positions_carry_the_instruments_terms(broker: Broker) -> None:
    await broker.place(market(leg("SPXW  261218P04800000", "Buy to Open", 1, "Equity Option")))
    await broker.place(market(leg("AAPL7 261218C00150000", "Buy to Open", 2, "Equity Option")))
    positions = await broker.positions()
    spxw = positions["SPXW  261218P04800000"]
    assert (spxw.underlying_symbol, spxw.multiplier) == ("SPX", D(100))
    mini = positions["AAPL7 261218C00150000"]
    assert (mini.underlying_symbol, mini.multiplier) == ("AAPL", D(10))
    seeded = positions["SPY   261218C00600000"]
    assert (seeded.underlying_symbol, seeded.multiplier) == ("SPY", D(100))
    # 15.20 x 100 + 2 x 7.10 x 10.
    assert (await broker.balances()).cash_balance == D(60000) - D(1520) - D(142)
    filtered = await broker.ok(
        "GET", f"/accounts/{broker.account}/positions?underlying-symbol[]=SPX"
    )
    assert [item["symbol"] for item in filtered["items"]] == ["SPXW  261218P04800000"]


@pytest.mark.parametrize(
    ("order_leg", "nested"),
    [
        (leg("AAPL", "Buy", 1, "Equity"), "invalid_action"),
        (leg(ES, "Buy", "1.5"), "invalid_quantity"),
        (leg("/XXZ6", "Buy", 1), "invalid_symbol"),
        (leg("ESZ6", "Buy", 1), "invalid_symbol"),
        (leg(ES, "Buy to Open", 1, "Equity Option"), "invalid_symbol"),
        (leg("./ESZ6 ZZZZ6 261218P4900", "Buy to Open", 1, "Future Option"), "invalid_symbol"),
        (leg("BTC/USD", "Buy to Open", 1, "Cryptocurrency"), "invalid_instrument_type"),
    ],
)
async def test_bad_futures_legs_are_refused(
    broker: Broker, order_leg: dict[str, Any], nested: str
) -> None:
    status, body = await broker.call(
        "POST", f"/accounts/{broker.account}/orders", market(order_leg)
    )
    assert status == 400, body
    assert nested in [item["code"] for item in body["error"]["errors"]]


async def test_cash_accounts_cannot_trade_futures(
    paper_broker: PaperBroker, paper_http: aiohttp.ClientSession, paper_auth: dict[str, str]
) -> None:
    cash = Broker(paper_http, paper_auth, paper_broker.cash_account_number)
    for body in (market(leg(ES, "Buy", 1)), market(leg(ES_PUT, "Buy to Open", 1, "Future Option"))):
        status, answer = await cash.call("POST", f"/accounts/{cash.account}/orders", body)
        assert status == 422, answer
        assert answer["error"]["errors"][0]["code"] == "futures_not_permitted"


async def test_quote_control_infers_and_checks_instrument_types(broker: Broker) -> None:
    quotes = {
        "%2FNQH7": "Future",
        ".%2FNQH7%20QN1H7%20270305C21000": "Future Option",
        "ETH%2FUSD": "Cryptocurrency",
        "NDX": "Index",
        "XYZ": "Equity",
    }
    for encoded, kind in quotes.items():
        assert (await broker.quote(encoded, "1.00", "1.10"))["instrument-type"] == kind
    status, body = await broker.call(
        "PUT", "/__paper/quotes/%2FNQH7", {"bid": "1", "ask": "2", "instrument-type": "Bond"}
    )
    assert status == 400, body
