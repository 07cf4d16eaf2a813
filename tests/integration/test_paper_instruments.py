"""Paper broker instrument look-ups over HTTP, parsed with tastyware's own models."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from tastytrade.instruments import Cryptocurrency, Future, FutureOption, FutureProduct, Option
from tastytrade.market_data import MarketData
from yarl import URL

from tests.fixtures.paper import PaperBroker

SPXW_PUT = "SPXW  261218P01000000"
ES_PUT = "./ESZ6 E3AZ6 261218P6000"


async def get(
    http: aiohttp.ClientSession, auth: dict[str, str], path: str, status: int = 200
) -> Any:
    """GET ``path`` exactly as written (already percent-encoded); the JSON body."""
    async with http.get(URL(path, encoded=True), headers=auth) as response:
        body = await response.json()
        assert response.status == status, body
        return body


async def test_equity_option_by_path_and_list(
    paper_http: aiohttp.ClientSession, paper_auth: dict[str, str]
) -> None:
    data = (
        await get(paper_http, paper_auth, "/instruments/equity-options/SPXW%20%20261218P01000000")
    )["data"]
    assert data["symbol"] == SPXW_PUT
    assert (data["root-symbol"], data["underlying-symbol"]) == ("SPXW", "SPX")
    assert data["strike-price"] == "1000.0"
    assert data["expiration-date"] == "2026-12-18"
    assert data["option-type"] == "P"
    assert data["shares-per-contract"] == 100
    assert (data["settlement-type"], data["exercise-style"]) == ("PM", "European")
    option = Option(**data)
    assert option.underlying_symbol == "SPX"
    assert option.strike_price == Decimal(1000)

    listed = await get(
        paper_http,
        paper_auth,
        "/instruments/equity-options?symbol[]=NDXP%20%20261218C20000000"
        "&symbol[]=RUTW%20%20261218C02000000&symbol[]=QQQ%20%20%20260116C00520000"
        "&symbol[]=NOT-AN-OPTION",
    )
    items = [Option(**item) for item in listed["data"]["items"]]
    assert [(o.root_symbol, o.underlying_symbol) for o in items] == [
        ("NDXP", "NDX"),
        ("RUTW", "RUT"),
        ("QQQ", "QQQ"),
    ]
    # An SPX (AM-settled) option: its own root, settled on the open.
    am = await get(
        paper_http, paper_auth, "/instruments/equity-options/SPX%20%20%20261218P04000000"
    )
    assert (am["data"]["underlying-symbol"], am["data"]["settlement-type"]) == ("SPX", "AM")


async def test_mini_option_root_from_the_seed_has_ten_shares(
    paper_http: aiohttp.ClientSession, paper_auth: dict[str, str]
) -> None:
    data = (
        await get(paper_http, paper_auth, "/instruments/equity-options/AAPL7%20261218C00150000")
    )["data"]
    option = Option(**data)
    assert (option.root_symbol, option.underlying_symbol) == ("AAPL7", "AAPL")
    assert option.shares_per_contract == 10
    assert data["option-chain-type"] == "Non-standard"


@pytest.mark.parametrize("path_symbol", ["ESZ6", "%2FESZ6"])
async def test_future_by_path(
    paper_http: aiohttp.ClientSession, paper_auth: dict[str, str], path_symbol: str
) -> None:
    data = (await get(paper_http, paper_auth, f"/instruments/futures/{path_symbol}"))["data"]
    assert (data["symbol"], data["product-code"]) == ("/ESZ6", "ES")
    assert data["notional-multiplier"] == "50.0"
    assert data["expiration-date"] == "2026-12-18"  # third Friday of December 2026
    assert data["future-product"]["root-symbol"] == "/ES"
    future = Future(**data)
    assert future.notional_multiplier == Decimal(50)
    assert future.future_product is not None
    assert future.future_product.root_symbol == "/ES"


@pytest.mark.parametrize(
    ("symbol", "multiplier", "code"),
    [
        ("MESZ6", "5", "MES"),
        ("NQH7", "20", "NQ"),
        ("MNQZ26", "2", "MNQ"),
        ("CLF7", "1000", "CL"),
        ("MCLF7", "100", "MCL"),
        ("GCG7", "100", "GC"),
        ("6EH7", "125000", "6E"),
    ],
)
async def test_future_multipliers(
    paper_http: aiohttp.ClientSession,
    paper_auth: dict[str, str],
    symbol: str,
    multiplier: str,
    code: str,
) -> None:
    future = Future(**(await get(paper_http, paper_auth, f"/instruments/futures/{symbol}"))["data"])
    assert future.symbol == "/" + symbol
    assert (future.product_code, future.notional_multiplier) == (code, Decimal(multiplier))


async def test_futures_list_by_symbol_and_product(
    paper_http: aiohttp.ClientSession, paper_auth: dict[str, str]
) -> None:
    by_symbol = await get(
        paper_http, paper_auth, "/instruments/futures?symbol[]=%2FESZ6&symbol[]=%2FMESH7"
    )
    assert [item["symbol"] for item in by_symbol["data"]["items"]] == ["/ESZ6", "/MESH7"]
    by_product = await get(paper_http, paper_auth, "/instruments/futures?product-code[]=ES")
    futures = [Future(**item) for item in by_product["data"]["items"]]
    assert len(futures) == 4
    assert all(f.product_code == "ES" and f.notional_multiplier == 50 for f in futures)
    assert sum(f.active_month for f in futures) == 1


async def test_future_option_by_path(
    paper_http: aiohttp.ClientSession, paper_auth: dict[str, str]
) -> None:
    path = "/instruments/future-options/.%2FESZ6%20E3AZ6%20261218P6000"
    data = (await get(paper_http, paper_auth, path))["data"]
    assert data["symbol"] == ES_PUT
    assert data["underlying-symbol"] == "/ESZ6"
    assert (data["product-code"], data["root-symbol"]) == ("ES", "/ES")
    assert (data["strike-price"], data["option-type"]) == ("6000.0", "P")
    assert data["expiration-date"] == "2026-12-18"
    # as TastyTrade's documented example: multiplier 1.0 although /ES moves 50 a point
    assert data["multiplier"] == "1.0"
    assert data["notional-value"] == "0.5"  # notional multiplier x display-factor
    option = FutureOption(**data)
    assert option.multiplier == Decimal(1)
    assert option.future_option_product is not None
    assert option.future_option_product.future_product is not None
    mes = (
        await get(
            paper_http, paper_auth, "/instruments/future-options/.%2FMESZ6%20EX3Z6%20261218C6100"
        )
    )["data"]
    assert (FutureOption(**mes).multiplier, mes["underlying-symbol"]) == (Decimal(1), "/MESZ6")


async def test_cryptocurrency_and_future_products(
    paper_http: aiohttp.ClientSession, paper_auth: dict[str, str]
) -> None:
    btc = Cryptocurrency(
        **(await get(paper_http, paper_auth, "/instruments/cryptocurrencies/BTC%2FUSD"))["data"]
    )
    assert (btc.symbol, btc.streamer_symbol) == ("BTC/USD", "BTC/USD:CXTALP")
    listed = await get(paper_http, paper_auth, "/instruments/cryptocurrencies")
    assert "ETH/USD" in {Cryptocurrency(**item).symbol for item in listed["data"]["items"]}
    products = await get(paper_http, paper_auth, "/instruments/future-products")
    parsed = {p.code: p for p in (FutureProduct(**i) for i in products["data"]["items"])}
    assert parsed["ES"].notional_multiplier == 50
    assert parsed["ES"].option_products
    assert "E3A" in {o.root_symbol for o in parsed["ES"].option_products}
    es = await get(paper_http, paper_auth, "/instruments/future-products/CME/ES")
    assert FutureProduct(**es["data"]).root_symbol == "/ES"


@pytest.mark.parametrize(
    "path",
    [
        "/instruments/equity-options/NOPE",
        "/instruments/equity-options/SPY%20%20%20261340C00600000",  # month 13
        "/instruments/equity-options/SPY%20%20%20261218C00000000",  # strike 0
        "/instruments/futures/XXZ6",  # unknown product
        "/instruments/futures/ESA6",  # not a month code
        "/instruments/futures/%2F%2FESZ6",
        "/instruments/future-options/.%2FESZ6%20ZZZZ6%20261218P6000",  # not an ES option root
        "/instruments/future-options/.%2FXXZ6%20E3AZ6%20261218P6000",
        "/instruments/future-options/ESZ6",
        "/instruments/cryptocurrencies/DOGE%2FUSD",
        "/instruments/future-products/CME/XX",
    ],
)
async def test_unknown_instruments_are_404_in_the_error_envelope(
    paper_http: aiohttp.ClientSession, paper_auth: dict[str, str], path: str
) -> None:
    body = await get(paper_http, paper_auth, path, status=404)
    assert body["error"]["code"] == "record_not_found"
    assert body["error"]["message"]


async def test_instrument_look_ups_need_a_token(paper_http: aiohttp.ClientSession) -> None:
    body = await get(paper_http, {}, "/instruments/futures/ESZ6", status=401)
    assert body["error"]["code"] == "token_invalid"


async def test_index_and_futures_quotes(
    paper_http: aiohttp.ClientSession, paper_auth: dict[str, str]
) -> None:
    body = await get(
        paper_http,
        paper_auth,
        "/market-data/by-type?index=SPX&index=NDX&index=RUT&equity=SPX"
        "&future=%2FESZ6&future-option=.%2FESZ6%20E3AZ6%20261218P4900&cryptocurrency=BTC%2FUSD",
    )
    quotes = {q.symbol: q for q in (MarketData(**item) for item in body["data"]["items"])}
    assert list(quotes) == ["SPX", "NDX", "RUT", "/ESZ6", "./ESZ6 E3AZ6 261218P4900", "BTC/USD"]
    assert {quotes[s].instrument_type.value for s in ("SPX", "NDX", "RUT")} == {"Index"}
    assert quotes["/ESZ6"].instrument_type.value == "Future"
    assert quotes["./ESZ6 E3AZ6 261218P4900"].instrument_type.value == "Future Option"
    assert quotes["BTC/USD"].instrument_type.value == "Cryptocurrency"


async def test_the_broker_logs_each_api_path_as_sent(
    paper_broker: PaperBroker, paper_http: aiohttp.ClientSession, paper_auth: dict[str, str]
) -> None:
    await get(paper_http, paper_auth, "/instruments/future-options/.%2FESZ6%20E3AZ6%20261218P6000")
    async with paper_http.get("/__paper/requests") as response:
        items = (await response.json())["data"]["items"]
    assert items[-1]["method"] == "GET"
    assert items[-1]["raw-path"] == "/instruments/future-options/.%2FESZ6%20E3AZ6%20261218P6000"
    assert all(not item["raw-path"].startswith("/__paper/") for item in items)
    async with paper_http.delete("/__paper/requests") as response:
        assert response.status == 200
    assert paper_broker.book.seen_requests() == []
