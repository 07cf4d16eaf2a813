"""The paper broker's HTTP API: TastyTrade's routes plus ``/__paper/`` test controls.

Handlers only translate HTTP to book calls and book results to payloads; the book holds the
logic. Two middlewares: injected faults (delay and/or error status) and error rendering.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from gatekeeper.errors import GatekeeperError, error_envelope
from gatekeeper.paper import payloads as p
from gatekeeper.paper.book import PaperBook
from gatekeeper.paper.control import add_control_routes
from gatekeeper.paper.errors import InvalidRequest
from gatekeeper.paper.model import Account, User

logger = logging.getLogger(__name__)

BOOK = web.AppKey("paper_book", PaperBook)
NEW_YORK = ZoneInfo("America/New_York")
CONTROL_PREFIX = "/__paper/"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(
    status: int, code: str, message: str, errors: list[dict[str, str]] | None = None
) -> web.Response:
    return web.json_response(error_envelope(code, message, errors), status=status)


@web.middleware
async def render_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except GatekeeperError as error:
        return error_response(
            error.status, error.code, error.message, getattr(error, "errors", None)
        )
    except web.HTTPNotFound:
        return error_response(404, "not_found", f"No route for {request.method} {request.path}")
    except web.HTTPMethodNotAllowed:
        return error_response(
            405, "method_not_allowed", f"{request.method} is not allowed on {request.path}"
        )


@web.middleware
async def inject_faults(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith(CONTROL_PREFIX):
        fault = request.app[BOOK].take_fault(request.method, request.path)
        if fault is not None:
            if fault.delay_seconds > 0:
                await asyncio.sleep(fault.delay_seconds)
            if fault.status is not None:
                return error_response(
                    fault.status, "paper_fault_injected", f"Injected fault on {fault.path_prefix}"
                )
    return await handler(request)


async def read_json(request: web.Request) -> Any:
    if not request.can_read_body:
        return {}
    text = await request.text()
    if not text.strip():
        return {}
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise InvalidRequest("Request body is not valid JSON") from None


def ok(request: web.Request, data: Any, *, status: int = 200, **extra: Any) -> web.Response:
    return web.json_response({**p.envelope(data, request.path), **extra}, status=status)


def _user(request: web.Request) -> User:
    return request.app[BOOK].authenticate(request.headers.get("Authorization"))


def _account(request: web.Request) -> Account:
    book = request.app[BOOK]
    return book.account_for(_user(request), request.match_info["account"])


def _int(request: web.Request, name: str) -> int:
    return int(request.match_info[name])


# --- authentication ----------------------------------------------------------------------


async def oauth_token(request: web.Request) -> web.Response:
    fields: Any
    if request.content_type == "application/x-www-form-urlencoded":
        fields = dict(await request.post())
    else:
        fields = await read_json(request)
    if not isinstance(fields, dict):
        raise InvalidRequest("Request body must be a JSON object or a form")
    token = request.app[BOOK].issue_oauth_token(
        grant_type=fields.get("grant_type"),
        refresh_token=fields.get("refresh_token"),
        client_secret=fields.get("client_secret"),
        client_id=fields.get("client_id"),
    )
    return web.json_response(
        {"access_token": token.value, "token_type": "Bearer", "expires_in": 900}
    )


async def create_session(request: web.Request) -> web.Response:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise InvalidRequest("Request body must be a JSON object")
    user, token, remember = request.app[BOOK].create_session(
        login=body.get("login"),
        password=body.get("password"),
        remember_token=body.get("remember-token"),
        remember_me=body.get("remember-me") is True,
    )
    return ok(request, p.session_payload(user, token, remember), status=201)


async def validate_session(request: web.Request) -> web.Response:
    user = _user(request)
    return ok(request, {**p.user_payload(user), "id": 1}, status=201)


async def delete_session(request: web.Request) -> web.Response:
    request.app[BOOK].end_session(request.headers.get("Authorization"))
    return web.Response(status=204)


# --- customers and accounts --------------------------------------------------------------


async def customer(request: web.Request) -> web.Response:
    return ok(request, p.customer_payload(_user(request), request.app[BOOK].now()))


async def customer_accounts(request: web.Request) -> web.Response:
    accounts = request.app[BOOK].accounts_of(_user(request))
    return ok(request, {"items": [p.account_item(account) for account in accounts]})


async def customer_account(request: web.Request) -> web.Response:
    return ok(request, p.account_payload(_account(request)))


async def balances(request: web.Request) -> web.Response:
    account = _account(request)
    currency = request.match_info.get("currency", "USD")
    if currency != "USD":
        raise InvalidRequest(f"Unsupported currency {currency}")
    book = request.app[BOOK]
    return ok(
        request, p.balances_payload(account, book.valuation(account.account_number), book.now())
    )


async def balance_snapshots(request: web.Request) -> web.Response:
    account = _account(request)
    book = request.app[BOOK]
    nlv = book.start_of_day_nlv[account.account_number]
    today = book.now().astimezone(NEW_YORK).date()
    time_of_day = request.query.get("time-of-day", "BOD")
    item = p.snapshot_payload(account, nlv, account.cash, today, time_of_day)
    return ok(request, {"items": [item]}, pagination=p.pagination(1, 10, 0, 1))


async def positions(request: web.Request) -> web.Response:
    account = _account(request)
    book = request.app[BOOK]
    today = book.now().astimezone(NEW_YORK).date()
    symbol = request.query.get("symbol")
    underlyings = set(request.query.getall("underlying-symbol[]", []))
    kind = request.query.get("instrument-type")
    items = [
        p.position_payload(position, book.mark_of(position), today)
        for position in account.positions.values()
        if (symbol is None or position.symbol == symbol)
        and (not underlyings or position.underlying_symbol in underlyings)
        and (kind is None or position.instrument_type == kind)
    ]
    return ok(request, {"items": items})


async def trading_status(request: web.Request) -> web.Response:
    return ok(request, p.trading_status_payload(_account(request), request.app[BOOK].now()))


# --- orders ------------------------------------------------------------------------------


async def place_order(request: web.Request) -> web.Response:
    account = _account(request)
    dry_run = request.path.endswith("/dry-run")
    result = request.app[BOOK].place_order(account, await read_json(request), dry_run=dry_run)
    return ok(request, p.placed_order_response(result), status=201)


async def live_orders(request: web.Request) -> web.Response:
    account = _account(request)
    today = request.app[BOOK].now().astimezone(NEW_YORK).date()
    orders = [
        o for o in account.orders.values() if o.received_at.astimezone(NEW_YORK).date() == today
    ]
    return ok(request, {"items": [p.order_payload(order) for order in orders]})


async def search_orders(request: web.Request) -> web.Response:
    account = _account(request)
    try:
        per_page = min(max(int(request.query.get("per-page", "10")), 1), 250)
        page = max(int(request.query.get("page-offset", "0")), 0)
    except ValueError:
        raise InvalidRequest("per-page and page-offset must be integers") from None
    statuses = set(request.query.getall("status[]", []))
    underlying = request.query.get("underlying-symbol")
    orders = [
        order
        for order in sorted(account.orders.values(), key=lambda o: o.id or 0, reverse=True)
        if (not statuses or order.status in statuses)
        and (underlying is None or order.underlying_symbol == underlying)
    ]
    chunk = orders[page * per_page : (page + 1) * per_page]
    return ok(
        request,
        {"items": [p.order_payload(order) for order in chunk]},
        pagination=p.pagination(len(orders), per_page, page, len(chunk)),
    )


async def get_order(request: web.Request) -> web.Response:
    order = request.app[BOOK].order(_account(request), _int(request, "id"))
    return ok(request, p.order_payload(order))


async def replace_order(request: web.Request) -> web.Response:
    account = _account(request)
    order = request.app[BOOK].replace_order(account, _int(request, "id"), await read_json(request))
    return ok(request, p.order_payload(order))


async def cancel_order(request: web.Request) -> web.Response:
    order = request.app[BOOK].cancel_order(_account(request), _int(request, "id"))
    return ok(request, p.order_payload(order))


async def place_complex_order(request: web.Request) -> web.Response:
    account = _account(request)
    dry_run = request.path.endswith("/dry-run")
    result = request.app[BOOK].place_complex_order(
        account, await read_json(request), dry_run=dry_run
    )
    return ok(request, p.complex_order_response(result), status=201)


async def live_complex_orders(request: web.Request) -> web.Response:
    account = _account(request)
    items = [p.complex_order_payload(c) for c in account.complex_orders.values()]
    return ok(request, {"items": items})


async def get_complex_order(request: web.Request) -> web.Response:
    complex_order = request.app[BOOK].complex_order(_account(request), _int(request, "id"))
    return ok(request, p.complex_order_payload(complex_order))


async def cancel_complex_order(request: web.Request) -> web.Response:
    complex_order = request.app[BOOK].cancel_complex_order(_account(request), _int(request, "id"))
    return ok(request, p.complex_order_payload(complex_order))


# --- market data -------------------------------------------------------------------------

QUERY_TYPES = ("index", "equity", "equity-option", "future", "future-option", "cryptocurrency")


async def market_data_by_type(request: web.Request) -> web.Response:
    _user(request)
    book = request.app[BOOK]
    symbols: list[str] = []
    for key in QUERY_TYPES:
        for value in request.query.getall(key, []):
            symbols.extend(s for s in value.split(",") if s)
    if len(symbols) > 100:
        raise InvalidRequest("At most 100 symbols per request")
    items = [p.quote_payload(book.quotes[s]) for s in dict.fromkeys(symbols) if s in book.quotes]
    return ok(request, {"items": items})


async def api_quote_token(request: web.Request) -> web.Response:
    _user(request)
    return ok(request, p.quote_token_payload(secrets.token_urlsafe(24), request.app[BOOK].now()))


def create_paper_app(book: PaperBook) -> web.Application:
    """The paper broker as an aiohttp application serving ``book``."""
    app = web.Application(middlewares=[render_errors, inject_faults])
    app[BOOK] = book
    acct = "/accounts/{account}"
    order_id = acct + r"/orders/{id:\d+}"
    complex_id = acct + r"/complex-orders/{id:\d+}"
    app.router.add_post("/oauth/token", oauth_token)
    app.router.add_post("/sessions", create_session)
    app.router.add_post("/sessions/validate", validate_session)
    app.router.add_delete("/sessions", delete_session)
    app.router.add_get("/customers/me", customer)
    app.router.add_get("/customers/me/accounts", customer_accounts)
    app.router.add_get("/customers/me/accounts/{account}", customer_account)
    app.router.add_get(acct + "/balances", balances)
    app.router.add_get(acct + "/balances/{currency}", balances)
    app.router.add_get(acct + "/balance-snapshots", balance_snapshots)
    app.router.add_get(acct + "/positions", positions)
    app.router.add_get(acct + "/trading-status", trading_status)
    app.router.add_post(acct + "/orders", place_order)
    app.router.add_post(acct + "/orders/dry-run", place_order)
    app.router.add_get(acct + "/orders/live", live_orders)
    app.router.add_get(acct + "/orders", search_orders)
    app.router.add_get(order_id, get_order)
    app.router.add_put(order_id, replace_order)
    app.router.add_patch(order_id, replace_order)
    app.router.add_delete(order_id, cancel_order)
    app.router.add_post(acct + "/complex-orders", place_complex_order)
    app.router.add_post(acct + "/complex-orders/dry-run", place_complex_order)
    app.router.add_get(acct + "/complex-orders/live", live_complex_orders)
    app.router.add_get(acct + "/complex-orders", live_complex_orders)
    app.router.add_get(complex_id, get_complex_order)
    app.router.add_delete(complex_id, cancel_complex_order)
    app.router.add_get("/market-data/by-type", market_data_by_type)
    app.router.add_get("/api-quote-tokens", api_quote_token)
    add_control_routes(app, book, read_json)
    return app
