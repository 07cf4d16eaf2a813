"""TastyTrade's authentication, customer, account and market-data routes."""

from __future__ import annotations

import secrets
from datetime import date
from typing import Any

from aiohttp import web

from gatekeeper.paper import order_payloads as op
from gatekeeper.paper import payloads as p
from gatekeeper.paper.errors import InvalidRequest
from gatekeeper.paper.http import (
    BOOK,
    NEW_YORK,
    current_account,
    current_user,
    ok,
    read_json,
)
from gatekeeper.paper.routes_money import transactions

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
    user = current_user(request)
    return ok(request, {**p.user_payload(user), "id": 1}, status=201)


async def delete_session(request: web.Request) -> web.Response:
    request.app[BOOK].end_session(request.headers.get("Authorization"))
    return web.Response(status=204)


# --- customers and accounts --------------------------------------------------------------


async def customer(request: web.Request) -> web.Response:
    return ok(request, p.customer_payload(current_user(request), request.app[BOOK].now()))


async def customer_accounts(request: web.Request) -> web.Response:
    accounts = request.app[BOOK].accounts_of(current_user(request))
    return ok(request, {"items": [p.account_item(account) for account in accounts]})


async def customer_account(request: web.Request) -> web.Response:
    return ok(request, p.account_payload(current_account(request)))


async def balances(request: web.Request) -> web.Response:
    account = current_account(request)
    currency = request.match_info.get("currency", "USD")
    if currency != "USD":
        raise InvalidRequest(f"Unsupported currency {currency}")
    book = request.app[BOOK]
    return ok(
        request, p.balances_payload(account, book.valuation(account.account_number), book.now())
    )


async def balance_snapshots(request: web.Request) -> web.Response:
    """``time-of-day`` BOD (the balances at the book's New York day start) or EOD (now);
    ``snapshot-date`` (default today): only today's snapshots exist, other days have none."""
    account = current_account(request)
    book = request.app[BOOK]
    today = book.now().astimezone(NEW_YORK).date()
    time_of_day = request.query.get("time-of-day", "BOD")
    if time_of_day not in ("BOD", "EOD"):
        raise InvalidRequest("time-of-day must be BOD or EOD")
    try:
        day = date.fromisoformat(request.query.get("snapshot-date", today.isoformat()))
    except ValueError:
        raise InvalidRequest("snapshot-date must be a date (YYYY-MM-DD)") from None
    if time_of_day == "EOD":
        value = book.valuation(account.account_number) if day == today else None
    else:
        value = book.start_of_day_of(account.account_number, day)
    items = [] if value is None else [p.snapshot_payload(account, value, day, time_of_day)]
    return ok(request, {"items": items}, pagination=p.pagination(len(items), 250, 0, len(items)))


async def positions(request: web.Request) -> web.Response:
    account = current_account(request)
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
    return ok(request, p.trading_status_payload(current_account(request), request.app[BOOK].now()))


# --- market data -------------------------------------------------------------------------

QUERY_TYPES = ("index", "equity", "equity-option", "future", "future-option", "cryptocurrency")


async def market_data_by_type(request: web.Request) -> web.Response:
    current_user(request)
    book = request.app[BOOK]
    symbols: list[str] = []
    for key in QUERY_TYPES:
        for value in request.query.getall(key, []):
            symbols.extend(s for s in value.split(",") if s)
    if len(symbols) > 100:
        raise InvalidRequest("At most 100 symbols per request")
    now = book.now()
    items = [
        op.quote_payload(book.quotes[s], now) for s in dict.fromkeys(symbols) if s in book.quotes
    ]
    return ok(request, {"items": items})


async def api_quote_token(request: web.Request) -> web.Response:
    current_user(request)
    return ok(request, op.quote_token_payload(secrets.token_urlsafe(24), request.app[BOOK].now()))


def add_account_routes(app: web.Application) -> None:
    acct = "/accounts/{account}"
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
    app.router.add_get(acct + "/transactions", transactions)
    app.router.add_get(acct + "/positions", positions)
    app.router.add_get(acct + "/trading-status", trading_status)
    app.router.add_get("/market-data/by-type", market_data_by_type)
    app.router.add_get("/api-quote-tokens", api_quote_token)
