"""Drive the real TastyTrade client libraries against a base URL.

Each driver logs in with the seed credentials, lists accounts, reads balances and positions,
dry-runs and places a limit order meant to rest (buy 1 AAPL far below the market), reads
the live orders, cancels the order and reads it back; it returns what it saw. They take
any base URL, so the same drivers run against the paper broker directly or through the
gatekeeper.

- tastyware ``tastytrade`` 13 (async, OAuth): the client's base URL is set on the private
  ``session._client`` after constructing (``point_client=True``), or the caller patches
  ``tastytrade.session.API_URL`` beforehand (with monkeypatch) and passes ``point_client=False``.
- ``tastytrade-sdk`` 1.2 (sync, requests, legacy password login, bare session tokens): its
  constructor only takes host[:port] and always prepends https://. An ``https://`` base URL
  is used as a user would: ``Tastytrade(api_base_url="host:port")``, the server's
  certificate authority trusted through ``REQUESTS_CA_BUNDLE`` (the caller sets it). Only a
  plain-HTTP base URL (the paper broker itself) needs the private base URL of its
  ``RequestsSession`` overwritten. It is blocking: call ``run_tastytrade_sdk`` through
  ``asyncio.to_thread`` (or use ``run_tastytrade_sdk_async``). Its errors derive from
  BaseException; they are re-raised as ``DriverError``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from tastytrade import Account, Session
from tastytrade.market_data import get_market_data_by_type
from tastytrade.order import InstrumentType, Leg, LimitOrder, OrderAction, OrderTimeInForce
from tastytrade.utils import TastytradeError
from tastytrade_sdk import Tastytrade
from tastytrade_sdk.api import HttpError, RequestsSession

# tastyware 13.2.3 posts orders with httpx2's deprecated ``data=<str>``; the suite turns
# warnings into errors, so tests using ``run_tastyware`` carry
# ``@pytest.mark.filterwarnings(TASTYWARE_WARNING_FILTER)``.
TASTYWARE_WARNING_FILTER = (
    "ignore:Use 'content=<...>' to upload raw bytes/text content.:DeprecationWarning"
)

RESTING_SYMBOL = "AAPL"
RESTING_PRICE = Decimal("100.00")  # far below the seed's 150.10 ask: the order rests


class DriverError(Exception):
    """A client call failed; ``step`` names the call, the rest is what the client reported."""

    def __init__(
        self,
        client: str,
        step: str,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(f"{client}: {step}: {message}")
        self.client, self.step, self.message = client, step, message
        self.status, self.code = status, code


@dataclass
class SdkRun:
    """What one driver saw, for callers to assert on."""

    client: str
    account_numbers: list[str]
    net_liquidating_value: Decimal
    cash_balance: Decimal
    positions: dict[str, Decimal]  # symbol -> signed quantity
    order_id: int
    placed_status: str
    live_order_ids: list[int]
    cancelled_status: str
    final_status: str
    dry_run_change_in_buying_power: Decimal | None = None  # signed as the client reports it
    quotes: dict[str, Decimal] = field(default_factory=dict)  # symbol -> mark, when read


async def run_tastyware(
    base_url: str,
    *,
    client_secret: str,
    refresh_token: str,
    account_number: str,
    point_client: bool = True,
    symbol: str = RESTING_SYMBOL,
    price: Decimal = RESTING_PRICE,
) -> SdkRun:
    """The tastyware client (``tastytrade`` 13): OAuth refresh, then the calls above."""
    step = "session"
    try:
        # Building the client loads the CA bundle (tens of ms, more on a busy machine): do it
        # off the event loop.
        client = await asyncio.to_thread(Session, client_secret, refresh_token)
        async with client as session:
            if point_client:
                session._client.base_url = base_url
            step = "accounts"
            accounts = await Account.get(session)
            account = next(a for a in accounts if a.account_number == account_number)
            step = "balances"
            balances = await account.get_balances(session)
            step = "positions"
            positions = await account.get_positions(session)
            step = "market data"
            quotes = await get_market_data_by_type(session, equities=[symbol])
            order = LimitOrder(
                time_in_force=OrderTimeInForce.DAY,
                price=-price,  # tastyware: negative = debit
                legs=[
                    Leg(
                        instrument_type=InstrumentType.EQUITY,
                        symbol=symbol,
                        action=OrderAction.BUY_TO_OPEN,
                        quantity=Decimal(1),
                    )
                ],
            )
            step = "dry run"
            dry = await account.place_order(session, order, dry_run=True)
            step = "place order"
            placed = await account.place_order(session, order, dry_run=False)
            step = "live orders"
            live = await account.get_live_orders(session)
            step = "cancel order"
            await account.delete_order(session, placed.order.id)
            cancelled = await account.get_order(session, placed.order.id)
            step = "order"
            final = await account.get_order(session, placed.order.id)
    except TastytradeError as error:
        raise DriverError("tastytrade", step, str(error)) from None
    return SdkRun(
        client="tastytrade",
        account_numbers=[a.account_number for a in accounts],
        net_liquidating_value=balances.net_liquidating_value,
        cash_balance=balances.cash_balance,
        positions={
            p.symbol: p.quantity if p.quantity_direction == "Long" else -p.quantity
            for p in positions
        },
        order_id=placed.order.id,
        placed_status=placed.order.status.value,
        live_order_ids=[o.id for o in live if o.status.value == "Live"],
        cancelled_status=cancelled.status.value,
        final_status=final.status.value,
        dry_run_change_in_buying_power=dry.buying_power_effect.change_in_buying_power,
        quotes={q.symbol: q.mark for q in quotes if q.mark is not None},
    )


def _sdk_call(tasty: Tastytrade, step: str, method: str, path: str, body: Any = None) -> Any:
    api = tasty.api
    try:
        if method == "POST":
            return api.post(path, data=body)
        if method == "DELETE":
            return api.delete(path)
        return api.get(path)
    except HttpError as error:  # derives from BaseException: turn it into an Exception
        raise DriverError(
            "tastytrade-sdk", step, str(error), status=error.http_code, code=error.error_code
        ) from None


def run_tastytrade_sdk(
    base_url: str,
    *,
    login: str,
    password: str,
    account_number: str,
    symbol: str = RESTING_SYMBOL,
    price: Decimal = RESTING_PRICE,
) -> SdkRun:
    """The official ``tastytrade-sdk`` 1.2 (blocking): password login, then the calls above."""
    if base_url.startswith("https://"):
        tasty = Tastytrade(api_base_url=base_url.removeprefix("https://").rstrip("/"))
    else:
        tasty = Tastytrade(api_base_url="paper.invalid")
        requests_session = tasty._Tastytrade__container.get(RequestsSession)
        requests_session._RequestsSession__base_url = base_url.rstrip("/")
    # The SDK keeps ONE requests.Session for the whole process (a class attribute) and puts
    # the session token in its default headers: drop a token left by an earlier run.
    shared = RequestsSession._RequestsSession__session
    shared.headers.pop("Authorization", None)
    try:
        tasty.login(login, password)
    except HttpError as error:
        raise DriverError(
            "tastytrade-sdk", "login", str(error), status=error.http_code, code=error.error_code
        ) from None
    try:
        accounts = _sdk_call(tasty, "accounts", "GET", "/customers/me/accounts")["data"]["items"]
        base = f"/accounts/{account_number}"
        balances = _sdk_call(tasty, "balances", "GET", f"{base}/balances")["data"]
        positions = _sdk_call(tasty, "positions", "GET", f"{base}/positions")["data"]["items"]
        order = {
            "order-type": "Limit",
            "time-in-force": "Day",
            "price": str(price),
            "price-effect": "Debit",
            "legs": [
                {
                    "instrument-type": "Equity",
                    "symbol": symbol,
                    "action": "Buy to Open",
                    "quantity": 1,
                }
            ],
        }
        dry = _sdk_call(tasty, "dry run", "POST", f"{base}/orders/dry-run", order)["data"]
        placed = _sdk_call(tasty, "place order", "POST", f"{base}/orders", order)["data"]["order"]
        live = _sdk_call(tasty, "live orders", "GET", f"{base}/orders/live")["data"]["items"]
        order_path = f"{base}/orders/{placed['id']}"
        cancelled = _sdk_call(tasty, "cancel order", "DELETE", order_path)["data"]
        final = _sdk_call(tasty, "order", "GET", order_path)["data"]
        tasty.logout()
    finally:
        shared.headers.pop("Authorization", None)
        # Close its pooled connections: a TLS server closing an idle one waits for the
        # client's close_notify, which an idle pool in another thread never sends.
        shared.close()
    effect = dry["buying-power-effect"]
    change = Decimal(effect["change-in-buying-power"])
    return SdkRun(
        client="tastytrade-sdk",
        account_numbers=[item["account"]["account-number"] for item in accounts],
        net_liquidating_value=Decimal(balances["net-liquidating-value"]),
        cash_balance=Decimal(balances["cash-balance"]),
        positions={
            p["symbol"]: Decimal(p["quantity"]) * (1 if p["quantity-direction"] == "Long" else -1)
            for p in positions
        },
        order_id=placed["id"],
        placed_status=placed["status"],
        live_order_ids=[o["id"] for o in live if o["status"] == "Live"],
        cancelled_status=cancelled["status"],
        final_status=final["status"],
        dry_run_change_in_buying_power=-change
        if effect["change-in-buying-power-effect"] == "Debit"
        else change,
    )


async def run_tastytrade_sdk_async(
    base_url: str, *, login: str, password: str, account_number: str, **options: Any
) -> SdkRun:
    """``run_tastytrade_sdk`` in a worker thread, so the event loop keeps running."""
    return await asyncio.to_thread(
        run_tastytrade_sdk,
        base_url,
        login=login,
        password=password,
        account_number=account_number,
        **options,
    )
