"""TastyTrade's instrument routes: equity options, futures, future options, cryptocurrencies.

A symbol in the path arrives percent-decoded (``%2FESZ6`` is ``/ESZ6``, ``%20`` a space); an
unknown or malformed one is a 404 in TastyTrade's error envelope. List routes take repeated
``symbol[]`` (and, for futures, ``product-code[]``) and return the symbols they know.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from aiohttp import web

from gatekeeper.paper import instrument_payloads as ip
from gatekeeper.paper.errors import RecordNotFound
from gatekeeper.paper.http import BOOK, NEW_YORK, current_user, ok
from gatekeeper.paper.instruments import (
    FutureContract,
    find_crypto,
    parse_equity_option,
    parse_future,
    parse_future_option,
)

# How many upcoming contracts of a product ``/instruments/futures?product-code[]=`` lists.
LISTED_CONTRACTS = 4


def _today(request: web.Request) -> date:
    current_user(request)  # TastyTrade answers instrument look-ups to signed-in users only
    return request.app[BOOK].now().astimezone(NEW_YORK).date()


def _symbols(request: web.Request) -> list[str]:
    return [*request.query.getall("symbol[]", []), *request.query.getall("symbol", [])]


def _one(request: web.Request, data: dict[str, Any] | None, kind: str) -> web.Response:
    if data is None:
        raise RecordNotFound(f"{kind} {request.match_info['symbol']!r} not found")
    return ok(request, data)


async def equity_option(request: web.Request) -> web.Response:
    today = _today(request)
    option = parse_equity_option(request.match_info["symbol"], request.app[BOOK].catalog)
    data = None if option is None else ip.equity_option_payload(option, today)
    return _one(request, data, "Equity option")


async def equity_options(request: web.Request) -> web.Response:
    today, catalog = _today(request), request.app[BOOK].catalog
    options = [parse_equity_option(symbol, catalog) for symbol in _symbols(request)]
    items = [ip.equity_option_payload(o, today) for o in options if o is not None]
    return ok(request, {"items": items})


async def future(request: web.Request) -> web.Response:
    today = _today(request)
    contract = parse_future(request.match_info["symbol"], request.app[BOOK].catalog)
    data = None if contract is None else ip.future_payload(contract, today)
    return _one(request, data, "Future")


async def futures(request: web.Request) -> web.Response:
    today, catalog = _today(request), request.app[BOOK].catalog
    contracts = [parse_future(symbol, catalog) for symbol in _symbols(request)]
    codes = request.query.getall("product-code[]", []) + request.query.getall("product-code", [])
    if not contracts and not codes:
        codes = list(catalog.future_products)
    for code in codes:
        product = catalog.future_products.get(code)
        if product is not None:
            contracts += [
                FutureContract(
                    f"{product.root_symbol}{month}{year % 10}", product, month, str(year % 10)
                )
                for year, month in ip.listed_contracts(product, today, LISTED_CONTRACTS)
            ]
    items = [ip.future_payload(c, today) for c in contracts if c is not None]
    return ok(request, {"items": items})


async def future_option(request: web.Request) -> web.Response:
    today = _today(request)
    option = parse_future_option(request.match_info["symbol"], request.app[BOOK].catalog)
    data = None if option is None else ip.future_option_payload(option, today)
    return _one(request, data, "Future option")


async def future_options(request: web.Request) -> web.Response:
    today, catalog = _today(request), request.app[BOOK].catalog
    options = [parse_future_option(symbol, catalog) for symbol in _symbols(request)]
    items = [ip.future_option_payload(o, today) for o in options if o is not None]
    return ok(request, {"items": items})


async def future_products(request: web.Request) -> web.Response:
    _today(request)
    products = request.app[BOOK].catalog.future_products.values()
    items = [ip.future_product_payload(product, with_options=True) for product in products]
    return ok(request, {"items": items})


async def future_product(request: web.Request) -> web.Response:
    _today(request)
    code = request.match_info["code"].removeprefix("/")
    product = request.app[BOOK].catalog.future_products.get(code)
    if product is None or product.exchange != request.match_info["exchange"]:
        raise RecordNotFound(f"Future product {code!r} not found")
    return ok(request, ip.future_product_payload(product, with_options=True))


async def cryptocurrency(request: web.Request) -> web.Response:
    _today(request)
    asset = find_crypto(request.match_info["symbol"], request.app[BOOK].catalog)
    return _one(request, None if asset is None else ip.crypto_payload(asset), "Cryptocurrency")


async def cryptocurrencies(request: web.Request) -> web.Response:
    _today(request)
    catalog = request.app[BOOK].catalog
    wanted = _symbols(request) or list(catalog.cryptocurrencies)
    assets = [find_crypto(symbol, catalog) for symbol in wanted]
    return ok(request, {"items": [ip.crypto_payload(a) for a in assets if a is not None]})


def add_instrument_routes(app: web.Application) -> None:
    base = "/instruments"
    app.router.add_get(base + "/equity-options", equity_options)
    app.router.add_get(base + "/equity-options/{symbol}", equity_option)
    app.router.add_get(base + "/futures", futures)
    app.router.add_get(base + "/futures/{symbol}", future)
    app.router.add_get(base + "/future-options", future_options)
    app.router.add_get(base + "/future-options/{symbol}", future_option)
    app.router.add_get(base + "/future-products", future_products)
    app.router.add_get(base + "/future-products/{exchange}/{code}", future_product)
    app.router.add_get(base + "/cryptocurrencies", cryptocurrencies)
    app.router.add_get(base + "/cryptocurrencies/{symbol}", cryptocurrency)
