"""A static stand-in for TastyTrade, fast enough not to be what a benchmark measures.

Run: python -m tests.bench.static_upstream --port 8090

It answers what the gatekeeper asks the broker for on the order path (balances, positions,
live orders, trading status, the beginning-of-day balance snapshot, money movements, quotes,
the account streamer's WebSocket) and the order submissions themselves, in TastyTrade's
shapes (copied from the paper broker, ``gatekeeper/paper/payloads.py``, which follows
``/work/shared/fixtures/tastytrade-recorded``).
Every account number is served, so each benchmark round can use fresh accounts.

The account is large (10,000,000 NLV) and its day is quiet, so one-share orders stay far
from every limit however many are in flight. Every placement is answered with the same
broker order id, which ``/orders/live`` always lists: the gatekeeper sees each accepted
order in the account state, as it would after a refresh at the real broker, so reservations
do not pile up over a run. Quotes carry a fresh ``updated-at`` (rewritten every second).

Anything else is 404, and remembered: ``GET /__static/unknown`` lists those paths so a
benchmark can say when the gatekeeper started asking for something this server lacks.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import UTC, datetime
from typing import Any

from aiohttp import WSMsgType, web

from gatekeeper.core.tradingday import trading_day
from gatekeeper.paper.payloads import ZERO_BALANCE_FIELDS

ORDER_ID = 424242
NLV, CASH = "10000000.00", "6000000.00"
_ZERO_BALANCES = [
    *ZERO_BALANCE_FIELDS,
    "short-equity-value",
    "short-derivative-value",
    "long-futures-value",
    "short-futures-value",
    "short-margineable-value",
    "used-derivative-buying-power",
]
# (symbol, instrument type, underlying, quantity, multiplier, mark)
_POSITIONS = (
    ("TQQQ", "Equity", "TQQQ", 100, 1, "49.35"),
    ("SPY   261218C00600000", "Equity Option", "SPY", 2, 100, "4.15"),
    ("BIL", "Equity", "BIL", 410, 1, "83.50"),
)
# (symbol, instrument type, bid, ask)
_QUOTES = (
    ("AAPL", "Equity", "149.90", "150.10"),
    ("TQQQ", "Equity", "49.30", "49.40"),
    ("BIL", "Equity", "83.45", "83.55"),
    ("SPY", "Equity", "599.90", "600.10"),
    ("SPY   261218C00600000", "Equity Option", "4.10", "4.20"),
)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def balances(account: str, today: str, updated_at: str) -> dict[str, Any]:
    return {
        **dict.fromkeys(_ZERO_BALANCES, "0.0"),
        "account-number": account, "currency": "USD",
        "cash-balance": CASH, "cash-settle-balance": CASH, "total-settle-balance": CASH,
        "margin-settle-balance": CASH, "net-liquidating-value": NLV, "margin-equity": NLV,
        "long-equity-value": "39170.00", "long-derivative-value": "830.00",
        "futures-margin-requirement": "0.00", "long-margineable-value": "39170.00",
        "equity-buying-power": "12000000.00", "derivative-buying-power": CASH,
        "day-trading-buying-power": "24000000.00", "available-trading-funds": CASH,
        "cash-available-to-withdraw": CASH, "sma-equity-option-buying-power": CASH,
        "special-memorandum-account-value": CASH, "day-trade-excess": CASH,
        "maintenance-requirement": "9792.5000", "reg-t-margin-requirement": "9792.5000",
        "maintenance-excess": "9990207.5000", "pending-cash-effect": "None",
        "buying-power-adjustment-effect": "None", "unsettled-cryptocurrency-fiat-effect": "None",
        "snapshot-date": today, "updated-at": updated_at,
    }  # fmt: skip


def position(account: str, today: str, spec: tuple[str, str, str, int, int, str]) -> dict[str, Any]:
    symbol, kind, underlying, quantity, multiplier, mark = spec
    return {
        "account-number": account, "symbol": symbol, "instrument-type": kind,
        "underlying-symbol": underlying, "quantity": quantity, "quantity-direction": "Long",
        "close-price": mark, "average-open-price": mark, "average-daily-market-close-price": mark,
        "average-yearly-market-close-price": mark, "multiplier": multiplier,
        "cost-effect": "Credit", "is-suppressed": False, "is-frozen": False,
        "restricted-quantity": 0, "realized-day-gain": "0.0", "realized-day-gain-effect": "None",
        "realized-day-gain-date": today, "realized-today": "0.0", "realized-today-effect": "None",
        "realized-today-date": today, "mark": mark, "mark-price": mark,
        "created-at": "2024-01-02T14:30:00.000+00:00",
        "updated-at": "2024-01-02T14:30:00.000+00:00",
    }  # fmt: skip


def order(account: str, received_at: datetime, *, placed: bool) -> dict[str, Any]:
    """The one-share AAPL limit order the benchmarks send, as TastyTrade shows it."""
    body: dict[str, Any] = {
        "account-number": account, "time-in-force": "Day", "order-type": "Limit", "size": 1,
        "underlying-symbol": "AAPL", "underlying-instrument-type": "Equity",
        "status": "Live" if placed else "Received", "cancellable": True, "editable": placed,
        "edited": False, "received-at": _iso(received_at),
        "updated-at": int(received_at.timestamp() * 1000),
        "legs": [{
            "instrument-type": "Equity", "symbol": "AAPL", "action": "Buy to Open",
            "quantity": 1, "remaining-quantity": 1, "fills": [],
        }],
        "price": "100.00", "price-effect": "Debit",
    }  # fmt: skip
    if placed:
        body = {"id": ORDER_ID, **body, "live-at": _iso(received_at)}
    return body


def order_answer(account: str, received_at: datetime, *, placed: bool) -> dict[str, Any]:
    money = {"change-in-margin-requirement": "100.00", "change-in-buying-power": "100.00",
             "current-buying-power": CASH, "new-buying-power": "5999900.00",
             "isolated-order-margin-requirement": "100.00"}  # fmt: skip
    effects = {"current-buying-power": "Credit", "new-buying-power": "Credit"}
    bp: dict[str, Any] = {}
    for key, value in money.items():
        bp |= {key: value, f"{key}-effect": effects.get(key, "Debit")}
    fees = ("regulatory-fees", "clearing-fees", "commission", "proprietary-index-option-fees",
            "total-fees", "rebates")  # fmt: skip
    return {
        "order": order(account, received_at, placed=placed),
        "buying-power-effect": {**bp, "is-spread": False, "impact": "100.00", "effect": "Debit"},
        "fee-calculation": {
            **{k: v for fee in fees for k, v in ((fee, "0.0"), (f"{fee}-effect", "None"))},
            "per-quantity": False,
        },
        "warnings": [],
    }


def quote(spec: tuple[str, str, str, str], now: datetime) -> dict[str, Any]:
    symbol, kind, bid, ask = spec
    mid = f"{(float(bid) + float(ask)) / 2:.2f}"
    today = now.date().isoformat()
    return {
        "symbol": symbol, "instrument-type": kind, "updated-at": _iso(now), "bid": bid,
        "ask": ask, "mid": mid, "mark": mid, "last": mid, "close": mid, "prev-close": mid,
        "bid-size": "100.0", "ask-size": "100.0", "volume": "0.0", "close-price-type": "Regular",
        "summary-date": today, "prev-close-date": today, "prev-close-price-type": "Final",
        "halt-start-time": -1, "halt-end-time": -1,
    }  # fmt: skip


def trading_status(account: str, updated_at: str) -> dict[str, Any]:
    flags = (
        "has-intraday-equities-margin",
        "is-aggregated-at-clearing",
        "is-closed",
        "is-closing-only",
        "is-cryptocurrency-enabled",
        "is-frozen",
        "is-full-equity-margin-required",
        "is-futures-closing-only",
        "is-futures-intra-day-enabled",
        "is-in-day-trade-equity-maintenance-call",
        "is-in-margin-call",
        "is-pattern-day-trader",
        "is-small-notional-futures-intra-day-enabled",
        "is-roll-the-day-forward-enabled",
        "are-far-otm-net-options-restricted",
        "is-equity-offering-enabled",
        "is-equity-offering-closing-only",
        "is-portfolio-margin-enabled",
        "is-risk-reducing-only",
    )
    return {
        **dict.fromkeys(flags, False), "account-number": account, "id": 1,
        "equities-margin-calculation-type": "Reg T", "fee-schedule-name": "default",
        "futures-margin-rate-multiplier": "0.0", "is-futures-enabled": True,
        "options-level": "No Restrictions", "short-calls-enabled": True,
        "small-notional-futures-margin-rate-multiplier": "0.0", "day-trade-count": 0,
        "updated-at": updated_at,
    }  # fmt: skip


def account_bodies(account: str, now: datetime) -> dict[tuple[str, str], bytes]:
    """Every answer of one account, encoded once: (method, route under the account) → bytes."""
    # TastyTrade's day is New York's: from 19:00 or 20:00 there, the UTC date is tomorrow's
    today, updated = trading_day(now).isoformat(), _iso(now)
    base = f"/accounts/{account}"
    pagination = {"per-page": 250, "page-offset": 0, "item-offset": 0, "total-items": 0,
                  "total-pages": 1, "current-item-count": 0, "previous-link": None,
                  "next-link": None, "paging-link-template": None}  # fmt: skip
    snapshot = {**balances(account, today, f"{today}T00:00:00.000+00:00"), "time-of-day": "BOD"}
    data: dict[tuple[str, str], Any] = {
        ("GET", "/balances"): balances(account, today, updated),
        ("GET", "/positions"): {"items": [position(account, today, p) for p in _POSITIONS]},
        ("GET", "/orders/live"): {"items": [order(account, now, placed=True)]},
        ("GET", "/trading-status"): trading_status(account, updated),
        ("GET", "/balance-snapshots"): {"items": [snapshot]},
        ("GET", "/transactions"): {"items": []},
        ("POST", "/orders"): order_answer(account, now, placed=True),
        ("POST", "/orders/dry-run"): order_answer(account, now, placed=False),
    }
    bodies = {}
    for (method, route), payload in data.items():
        envelope: dict[str, Any] = {"data": payload, "context": base + route}
        if route == "/transactions":
            envelope["pagination"] = pagination
        bodies[method, route] = json.dumps(envelope).encode()
    return bodies


class StaticBroker:
    """The app's state: encoded answers per account, the quotes, the paths it lacked."""

    def __init__(self) -> None:
        self.accounts: dict[str, dict[tuple[str, str], bytes]] = {}
        self.quotes = b""
        self.unknown: dict[str, int] = {}
        self.refresh_quotes()

    def refresh_quotes(self) -> None:
        now = datetime.now(UTC)
        items = [quote(spec, now) for spec in _QUOTES]
        envelope = {"data": {"items": items}, "context": "/market-data/by-type"}
        self.quotes = json.dumps(envelope).encode()

    async def account_route(self, request: web.Request) -> web.Response:
        account, route = request.match_info["account"], "/" + request.match_info["route"]
        bodies = self.accounts.get(account)
        if bodies is None:
            bodies = self.accounts[account] = account_bodies(account, datetime.now(UTC))
        body = bodies.get((request.method, route))
        if body is None:
            return self.not_found(request)
        await request.read()
        return _json(body, 201 if request.method == "POST" else 200)

    async def market_data(self, request: web.Request) -> web.Response:
        return _json(self.quotes)

    def not_found(self, request: web.Request) -> web.Response:
        key = f"{request.method} {request.path}"
        self.unknown[key] = self.unknown.get(key, 0) + 1
        return _json(b'{"error": {"code": "not_found", "message": "static upstream"}}', 404)

    async def catch_all(self, request: web.Request) -> web.Response:
        return self.not_found(request)

    async def list_unknown(self, request: web.Request) -> web.Response:
        return web.json_response(self.unknown)

    async def account_streamer(self, request: web.Request) -> web.WebSocketResponse:
        """TastyTrade's account streamer (``../shared/tastytrade-api.md`` §8), for a day on
        which nothing changes: every action acknowledged, no notification ever sent."""
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        accounts: list[str] = []
        async for frame in ws:
            if frame.type is not WSMsgType.TEXT:
                continue
            message = json.loads(frame.data)
            ack = {
                "status": "ok",
                "action": message.get("action"),
                "web-socket-session-id": "static",
                "request-id": message.get("request-id"),
            }
            if message.get("action") == "connect":
                value = message.get("value")
                accounts = sorted({*accounts, *([value] if isinstance(value, str) else value)})
                ack["value"] = accounts
            await ws.send_str(json.dumps(ack))
        return ws


def _json(body: bytes, status: int = 200) -> web.Response:
    return web.Response(body=body, status=status, content_type="application/json")


def make_app() -> web.Application:
    broker = StaticBroker()

    async def refresher(app: web.Application) -> Any:
        async def loop() -> None:
            while True:
                await asyncio.sleep(1.0)
                broker.refresh_quotes()

        task = asyncio.create_task(loop())
        yield
        task.cancel()

    app = web.Application()
    app.cleanup_ctx.append(refresher)
    app.router.add_get("/__static/unknown", broker.list_unknown)
    app.router.add_get("/market-data/by-type", broker.market_data)
    app.router.add_get("/account-streamer", broker.account_streamer)
    app.router.add_route("*", "/accounts/{account}/{route:.+}", broker.account_route)
    app.router.add_route("*", "/{tail:.*}", broker.catch_all)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    web.run_app(make_app(), host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
