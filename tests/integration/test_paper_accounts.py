"""Paper broker account data: accounts, balances, positions, trading status, quotes."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp

from tests.fixtures.paper import PaperBroker

RECORDED = Path("/work/shared/fixtures/tastytrade-recorded")
# Required by tastyware 13's CurrentPosition (plus the mark fields we always send).
POSITION_KEYS = {
    "account-number", "symbol", "instrument-type", "underlying-symbol", "quantity",
    "quantity-direction", "close-price", "average-open-price", "multiplier", "cost-effect",
    "is-suppressed", "is-frozen", "realized-day-gain", "realized-day-gain-effect",
    "realized-day-gain-date", "realized-today", "realized-today-effect", "realized-today-date",
    "created-at", "updated-at", "mark", "mark-price",
}  # fmt: skip


def recorded(name: str) -> Any:
    return json.loads((RECORDED / name).read_text())


async def get(session: aiohttp.ClientSession, path: str, headers: dict[str, str]) -> Any:
    async with session.get(path, headers=headers) as response:
        assert response.status == 200, await response.text()
        body = await response.json()
    assert body["context"] == path.split("?")[0]
    return body["data"]


async def test_accounts_list_only_the_users_accounts(
    paper_broker: PaperBroker, paper_http: aiohttp.ClientSession, paper_auth: dict[str, str]
) -> None:
    data = await get(paper_http, "/customers/me/accounts", paper_auth)
    numbers = [item["account"]["account-number"] for item in data["items"]]
    assert numbers == [paper_broker.account_number, paper_broker.cash_account_number]
    assert {item["authority-level"] for item in data["items"]} == {"owner"}
    first = data["items"][0]["account"]
    assert first["margin-or-cash"] == "Margin"
    assert first["is-closed"] is False
    one = await get(paper_http, f"/customers/me/accounts/{paper_broker.account_number}", paper_auth)
    assert one == first
    me = await get(paper_http, "/customers/me", paper_auth)
    assert me["id"] == "me"
    assert me["email"] == "paper@example.com"


async def test_balances_have_the_recorded_field_set_and_account_a_figures(
    paper_broker: PaperBroker, paper_http: aiohttp.ClientSession, paper_auth: dict[str, str]
) -> None:
    number = paper_broker.account_number
    data = await get(paper_http, f"/accounts/{number}/balances", paper_auth)
    expected = recorded("Get_Account_Balance.json")["data"]
    assert set(expected) <= set(data)
    for key, value in expected.items():
        assert type(data[key]) is type(value), key
    assert data["account-number"] == number
    assert Decimal(data["net-liquidating-value"]) == Decimal("100000.00")
    assert Decimal(data["cash-balance"]) == Decimal("60000.00")
    # TQQQ 100 x 49.35 + BIL 410 x 83.50; the SPY call 2 x 4.15 x 100.
    assert Decimal(data["long-equity-value"]) == Decimal("39170.00")
    assert Decimal(data["long-derivative-value"]) == Decimal("830.00")
    assert data == await get(paper_http, f"/accounts/{number}/balances/USD", paper_auth) | {
        "updated-at": data["updated-at"]
    }


async def test_positions_match_recorded_shape_and_seed(
    paper_broker: PaperBroker, paper_http: aiohttp.ClientSession, paper_auth: dict[str, str]
) -> None:
    data = await get(paper_http, f"/accounts/{paper_broker.account_number}/positions", paper_auth)
    recorded_keys = set(recorded("Get_Positions.json")["data"]["items"][1])
    by_symbol = {item["symbol"]: item for item in data["items"]}
    assert set(by_symbol) == {"TQQQ", "SPY   261218C00600000", "BIL"}
    for item in data["items"]:
        assert set(item) >= POSITION_KEYS
        assert recorded_keys <= set(item)
        assert isinstance(item["quantity"], int)
        assert isinstance(item["close-price"], str)
    call = by_symbol["SPY   261218C00600000"]
    assert call["instrument-type"] == "Equity Option"
    assert call["underlying-symbol"] == "SPY"
    assert call["quantity"] == 2
    assert call["quantity-direction"] == "Long"
    assert call["multiplier"] == 100
    assert Decimal(call["mark"]) == Decimal("4.15")
    assert by_symbol["TQQQ"]["quantity"] == 100
    assert Decimal(by_symbol["TQQQ"]["mark"]) == Decimal("49.35")
    only_spy = await get(
        paper_http,
        f"/accounts/{paper_broker.account_number}/positions?underlying-symbol[]=SPY",
        paper_auth,
    )
    assert [item["symbol"] for item in only_spy["items"]] == ["SPY   261218C00600000"]


async def test_trading_status_and_balance_snapshot(
    paper_broker: PaperBroker, paper_http: aiohttp.ClientSession, paper_auth: dict[str, str]
) -> None:
    number = paper_broker.account_number
    status = await get(paper_http, f"/accounts/{number}/trading-status", paper_auth)
    assert status["account-number"] == number
    assert status["is-frozen"] is False
    assert status["is-closing-only"] is False
    snapshots = await get(
        paper_http, f"/accounts/{number}/balance-snapshots?time-of-day=BOD", paper_auth
    )
    (snapshot,) = snapshots["items"]
    assert snapshot["time-of-day"] == "BOD"
    assert Decimal(snapshot["net-liquidating-value"]) == Decimal("100000.00")
    # The morning snapshot stays put while prices move; a new day takes the current figures.
    book = paper_broker.book
    book.set_quote("TQQQ", Decimal("39.30"), Decimal("39.40"))
    path = f"/accounts/{number}/balance-snapshots?time-of-day=BOD"
    (snapshot,) = (await get(paper_http, path, paper_auth))["items"]
    assert Decimal(snapshot["net-liquidating-value"]) == Decimal("100000.00")
    assert Decimal(snapshot["cash-balance"]) == Decimal("60000.00")
    book.reset_start_of_day()
    (snapshot,) = (await get(paper_http, path, paper_auth))["items"]
    assert Decimal(snapshot["net-liquidating-value"]) == Decimal("99000.00")


async def test_market_data_by_type(
    paper_http: aiohttp.ClientSession, paper_auth: dict[str, str]
) -> None:
    option = "SPY   261218C00600000"
    path = f"/market-data/by-type?equity=AAPL&equity=SPY&equity-option={option}&equity=NOPE"
    data = await get(paper_http, path, paper_auth)
    by_symbol = {item["symbol"]: item for item in data["items"]}
    assert set(by_symbol) == {"AAPL", "SPY", option}
    aapl = by_symbol["AAPL"]
    for key in ("bid", "ask", "mid", "mark", "last", "close", "prev-close"):
        assert isinstance(aapl[key], str), key
    assert (Decimal(aapl["bid"]), Decimal(aapl["ask"]), Decimal(aapl["mid"])) == (
        Decimal("149.90"),
        Decimal("150.10"),
        Decimal("150.00"),
    )
    assert aapl["instrument-type"] == "Equity"
    assert by_symbol[option]["instrument-type"] == "Equity Option"
    assert "+00:00" in aapl["updated-at"]


async def test_api_quote_token_has_recorded_shape(
    paper_http: aiohttp.ClientSession, paper_auth: dict[str, str]
) -> None:
    data = await get(paper_http, "/api-quote-tokens", paper_auth)
    assert set(recorded("Get_Api_Quote_Token.json")["data"]) <= set(data)
    assert data["level"] == "demo"
