"""Test-control routes under ``/__paper/`` (not TastyTrade's; no faults).

They need a token of their own, in ``X-Paper-Control-Token`` (compared in constant time): a
bot's broker credentials never reach them, nor does anyone who does not hold the token, so a
request relayed by a proxy in front of the broker cannot set a bot's cash.

Move or remove quotes (any instrument type: a future ``/ESZ6`` is ``/__paper/quotes/%2FESZ6``),
inject faults, read the log of order requests that reached the broker and the log of every
API request (method and raw path), set cash, deposit or withdraw (a Money Movement
transaction, :mod:`gatekeeper.paper.routes_money`). Each route is a thin wrapper over the PaperBook
method doing the job.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from aiohttp import web

from gatekeeper.paper import order_payloads as op
from gatekeeper.paper import payloads as p
from gatekeeper.paper.errors import InvalidRequest, PaperError, RecordNotFound
from gatekeeper.paper.http import BOOK, Handler, ok, read_json
from gatekeeper.paper.model import QUOTED_TYPES, RESTRICTIONS, Fault
from gatekeeper.paper.orders import parse_decimal
from gatekeeper.paper.routes_money import post_money_movement

CONTROL_TOKEN_HEADER = "X-Paper-Control-Token"  # noqa: S105 - a header name
CONTROL_TOKEN = web.AppKey("paper_control_token", bytes)


class ControlTokenInvalid(PaperError):
    status = 401
    code = "control_token_invalid"


def _require_control_token(handler: Handler) -> Handler:
    """``handler`` behind the control token (a wrapper per route, so that every path the
    router resolves to a control route is guarded, however it was spelled)."""

    async def guarded(request: web.Request) -> web.StreamResponse:
        presented = request.headers.get(CONTROL_TOKEN_HEADER, "").encode("utf-8", "replace")
        if not hmac.compare_digest(presented, request.app[CONTROL_TOKEN]):
            raise ControlTokenInvalid(
                f"The paper broker's control routes need the {CONTROL_TOKEN_HEADER} header"
            )
        return await handler(request)

    return guarded


def _object(body: Any) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise InvalidRequest("Request body must be a JSON object")
    return body


def _decimal(body: Mapping[str, Any], key: str) -> Decimal | None:
    if body.get(key) is None:
        return None
    value = parse_decimal(body[key])
    if value is None:
        raise InvalidRequest(f"{key} must be a number")
    return value


def _required(body: Mapping[str, Any], key: str) -> Decimal:
    value = _decimal(body, key)
    if value is None:
        raise InvalidRequest(f"{key} is required")
    return value


def _optional_int(body: Mapping[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"{key} must be an integer")
    return value


def fault_payload(fault: Fault) -> dict[str, Any]:
    return {
        "path": fault.path_prefix,
        "status": fault.status,
        "delay": fault.delay_seconds,
        "method": fault.method,
        "remaining": fault.remaining,
        "after": fault.after,
    }


async def list_quotes(request: web.Request) -> web.Response:
    book = request.app[BOOK]
    now = book.now()
    return ok(request, {"items": [op.quote_payload(quote, now) for quote in book.quotes.values()]})


async def put_quote(request: web.Request) -> web.Response:
    """Body: ``{"bid", "ask", "mark"?, "last"?, "close"?, "instrument-type"?, "updated-at"?,
    "crossed"?}``.

    ``updated-at`` (ISO 8601) pins the quote's time, to make it stale; without it the quote
    is current whenever it is read, as a live feed's would be.

    Without ``instrument-type`` the symbol says (``./`` future option, ``/`` future, OCC
    equity option, ``BTC/USD`` cryptocurrency, ``SPX`` index, else equity).
    """
    body = _object(await read_json(request))
    kind = body.get("instrument-type")
    if kind is not None and kind not in QUOTED_TYPES:
        raise InvalidRequest(f"instrument-type must be one of {', '.join(sorted(QUOTED_TYPES))}")
    quote = request.app[BOOK].set_quote(
        request.match_info["symbol"],
        _required(body, "bid"),
        _required(body, "ask"),
        mark=_decimal(body, "mark"),
        instrument_type=kind,
        last=_decimal(body, "last"),
        close=_decimal(body, "close"),
        crossed=body.get("crossed") is True,
    )
    quote.pinned_updated_at = _timestamp(body, "updated-at")
    return ok(request, op.quote_payload(quote, request.app[BOOK].now()))


def _timestamp(body: Mapping[str, Any], key: str) -> datetime | None:
    value = body.get(key)
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        raise InvalidRequest(f"{key} must be an ISO 8601 time") from None
    if parsed.tzinfo is None:
        raise InvalidRequest(f"{key} must carry a time zone")
    return parsed


async def delete_quote(request: web.Request) -> web.Response:
    symbol = request.match_info["symbol"]
    if not request.app[BOOK].remove_quote(symbol):
        raise RecordNotFound(f"No quote for {symbol}")
    return ok(request, {"symbol": symbol, "removed": True})


async def list_faults(request: web.Request) -> web.Response:
    return ok(request, {"items": [fault_payload(fault) for fault in request.app[BOOK].faults]})


async def put_fault(request: web.Request) -> web.Response:
    """Body: ``{"path": prefix, "status"?, "delay"? (seconds), "method"?, "times"?, "after"?}``."""
    body = _object(await read_json(request))
    path, method, after = body.get("path"), body.get("method"), body.get("after", False)
    if not isinstance(after, bool):
        raise InvalidRequest("after must be true or false")
    if not isinstance(path, str) or not path.startswith("/"):
        raise InvalidRequest("path must be a path prefix starting with /")
    if method is not None and not isinstance(method, str):
        raise InvalidRequest("method must be a string")
    times = _optional_int(body, "times")
    if times is not None and times < 1:
        raise InvalidRequest("times must be a positive integer")
    delay = _decimal(body, "delay") or Decimal(0)
    if not 0 <= delay <= 600:
        raise InvalidRequest("delay must be 0-600 seconds")
    fault = request.app[BOOK].add_fault(
        path,
        status=_optional_int(body, "status"),
        delay_seconds=float(delay),
        method=method,
        times=times,
        after=after,
    )
    return ok(request, fault_payload(fault))


async def delete_faults(request: web.Request) -> web.Response:
    """Clear every fault, or only those on ``?path=<prefix>``."""
    book = request.app[BOOK]
    book.clear_faults(request.query.get("path"))
    return ok(request, {"items": [fault_payload(fault) for fault in book.faults]})


async def received_orders(request: web.Request) -> web.Response:
    entries = request.app[BOOK].received_orders()
    return ok(request, {"items": [op.received_payload(entry) for entry in entries]})


async def clear_received(request: web.Request) -> web.Response:
    request.app[BOOK].clear_received_orders()
    return ok(request, {"items": []})


async def seen_requests(request: web.Request) -> web.Response:
    entries = request.app[BOOK].seen_requests()
    return ok(request, {"items": [op.seen_payload(entry) for entry in entries]})


async def clear_seen_requests(request: web.Request) -> web.Response:
    request.app[BOOK].seen.clear()
    return ok(request, {"items": []})


async def put_cash(request: web.Request) -> web.Response:
    book = request.app[BOOK]
    number = request.match_info["account"]
    if number not in book.accounts:
        raise RecordNotFound(f"Account {number} not found")
    cash = _required(_object(await read_json(request)), "cash")
    book.set_cash(number, cash)
    value = book.valuation(number)
    return ok(
        request,
        {
            "account-number": number,
            "cash-balance": p.dec(cash),
            "net-liquidating-value": p.dec(value.net_liquidating_value),
        },
    )


async def put_trading_status(request: web.Request) -> web.Response:
    """Body: any of ``is-closing-only``, ``is-frozen``, ``is-closed``, ``is-in-margin-call``
    (booleans): what the account's /trading-status reports from now on."""
    book = request.app[BOOK]
    number = request.match_info["account"]
    if number not in book.accounts:
        raise RecordNotFound(f"Account {number} not found")
    body = _object(await read_json(request))
    unknown = sorted(set(body) - set(RESTRICTIONS))
    if unknown or not all(isinstance(v, bool) for v in body.values()):
        raise InvalidRequest(f"give booleans for any of {', '.join(RESTRICTIONS)}")
    account = book.accounts[number]
    account.restrictions.update(body)
    return ok(request, p.trading_status_payload(account, book.now()))


_ROUTES: tuple[tuple[str, str, Handler], ...] = (
    ("GET", "/__paper/quotes", list_quotes),
    ("PUT", "/__paper/quotes/{symbol}", put_quote),
    ("DELETE", "/__paper/quotes/{symbol}", delete_quote),
    ("GET", "/__paper/faults", list_faults),
    ("PUT", "/__paper/faults", put_fault),
    ("DELETE", "/__paper/faults", delete_faults),
    ("GET", "/__paper/orders", received_orders),
    ("DELETE", "/__paper/orders", clear_received),
    ("GET", "/__paper/requests", seen_requests),
    ("DELETE", "/__paper/requests", clear_seen_requests),
    ("PUT", "/__paper/accounts/{account}/cash", put_cash),
    ("PUT", "/__paper/accounts/{account}/trading-status", put_trading_status),
    ("POST", "/__paper/accounts/{account}/money-movements", post_money_movement),
)


def add_control_routes(app: web.Application, control_token: str) -> None:
    """The ``/__paper/`` routes, each needing ``control_token`` (never empty)."""
    if not control_token:
        raise ValueError("the paper broker's control token must not be empty")
    app[CONTROL_TOKEN] = control_token.encode("utf-8")
    for method, path, handler in _ROUTES:
        app.router.add_route(method, path, _require_control_token(handler))
