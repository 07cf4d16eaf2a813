"""The paper broker's state: plain dataclasses, Decimal money, timezone-aware times."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Literal

EQUITY = "Equity"
EQUITY_OPTION = "Equity Option"
FUTURE = "Future"
FUTURE_OPTION = "Future Option"
INDEX = "Index"
CRYPTOCURRENCY = "Cryptocurrency"
# What orders may trade (crypto orders are not supported by the paper broker).
TRADED_TYPES = frozenset({EQUITY, EQUITY_OPTION, FUTURE, FUTURE_OPTION})
# Quotes may also be set for what cannot be traded here: indices and cryptocurrencies.
QUOTED_TYPES = TRADED_TYPES | {INDEX, CRYPTOCURRENCY}

RECEIVED = "Received"
LIVE = "Live"
CONTINGENT = "Contingent"
FILLED = "Filled"
CANCELLED = "Cancelled"
REJECTED = "Rejected"
WORKING_STATUSES = frozenset({RECEIVED, LIVE, CONTINGENT})

DEBIT = "Debit"
CREDIT = "Credit"
NONE_EFFECT = "None"


@dataclass(frozen=True)
class Terms:
    """What trading needs to know about an instrument, from the catalog.

    ``multiplier``: value of one unit per point of price (shares per contract for equity
    options, the notional multiplier for futures and their options). ``underlying_symbol``:
    what positions group under (``SPX`` for SPXW options, ``/ES`` for ``/ESZ6``, the future
    ``/ESZ6`` for its options); ``underlying_type`` is that underlying's instrument type.
    """

    multiplier: Decimal
    underlying_symbol: str
    underlying_type: str


@dataclass
class Quote:
    symbol: str
    instrument_type: str
    bid: Decimal
    ask: Decimal
    updated_at: datetime
    mark_override: Decimal | None = None
    last: Decimal | None = None
    close: Decimal | None = None
    # A live feed's quotes are current: their updated-at is the time they are read, unless a
    # test pins an older one to make the quote stale.
    pinned_updated_at: datetime | None = None

    @property
    def mid(self) -> Decimal:
        return (self.bid + self.ask) / 2

    @property
    def mark(self) -> Decimal:
        return self.mark_override if self.mark_override is not None else self.mid


@dataclass
class Position:
    account_number: str
    symbol: str
    instrument_type: str
    quantity: Decimal  # signed: negative is short
    average_open_price: Decimal
    multiplier: Decimal
    underlying_symbol: str
    created_at: datetime
    updated_at: datetime
    close_price: Decimal = Decimal(0)
    realized_today: Decimal = Decimal(0)


@dataclass
class Fill:
    fill_id: str
    quantity: Decimal
    fill_price: Decimal
    filled_at: datetime


@dataclass
class OrderLeg:
    instrument_type: str
    symbol: str
    action: str
    quantity: Decimal
    remaining_quantity: Decimal
    terms: Terms
    fills: list[Fill] = field(default_factory=list)

    @property
    def is_buy(self) -> bool:
        return self.action.startswith("Buy")

    @property
    def is_closing(self) -> bool:
        return self.action.endswith("to Close")

    @property
    def multiplier(self) -> Decimal:
        return self.terms.multiplier


@dataclass
class PaperOrder:
    account_number: str
    order_type: str
    time_in_force: str
    legs: list[OrderLeg]
    received_at: datetime
    updated_at: datetime
    id: int | None = None
    status: str = RECEIVED
    price: Decimal | None = None
    price_effect: str | None = None
    stop_trigger: Decimal | None = None
    gtc_date: str | None = None
    external_identifier: str | None = None
    source: str | None = None
    strict_position_effect: bool = False
    live_at: datetime | None = None
    terminal_at: datetime | None = None
    cancelled_at: datetime | None = None
    complex_order_id: int | None = None
    replaces_order_id: int | None = None
    replacing_order_id: int | None = None
    edited: bool = False
    reject_reason: str | None = None

    @property
    def size(self) -> Decimal:
        quantities = [leg.quantity for leg in self.legs]
        if all(q == q.to_integral_value() for q in quantities):
            return Decimal(math.gcd(*(int(q) for q in quantities)))
        return quantities[0]

    @property
    def underlying_symbol(self) -> str:
        return self.legs[0].terms.underlying_symbol

    @property
    def underlying_instrument_type(self) -> str:
        return self.legs[0].terms.underlying_type

    @property
    def is_working(self) -> bool:
        return self.status in WORKING_STATUSES

    @property
    def cancellable(self) -> bool:
        return self.is_working

    @property
    def editable(self) -> bool:
        return self.status == LIVE


ComplexType = Literal["OTO", "OCO", "OTOCO"]


@dataclass
class ComplexOrder:
    id: int
    account_number: str
    type: ComplexType
    orders: list[PaperOrder]
    trigger_order: PaperOrder | None = None
    terminal_at: datetime | None = None


@dataclass(frozen=True)
class MoneyMovement:
    """Money into (``amount`` > 0) or out of the account that is not a trade: TastyTrade's
    ``Money Movement`` transaction (sub-type ``Deposit``, ``Withdrawal``, ``Transfer``...)."""

    id: int
    account_number: str
    sub_type: str
    amount: Decimal
    executed_at: datetime
    transaction_date: date  # America/New_York
    description: str


@dataclass
class Account:
    account_number: str
    nickname: str
    margin_or_cash: Literal["Margin", "Cash"]
    owner: str  # user login
    opened_at: datetime
    cash: Decimal
    positions: dict[str, Position] = field(default_factory=dict)
    orders: dict[int, PaperOrder] = field(default_factory=dict)
    complex_orders: dict[int, ComplexOrder] = field(default_factory=dict)
    account_type_name: str = "Individual"
    money_movements: list[MoneyMovement] = field(default_factory=list)
    # The broker's own restrictions, as /trading-status reports them (set by tests).
    restrictions: dict[str, bool] = field(default_factory=dict)


# What /trading-status may report as restricted, and tests may set.
RESTRICTIONS = ("is-closing-only", "is-frozen", "is-closed", "is-in-margin-call")


@dataclass(frozen=True)
class OAuthClient:
    client_id: str
    client_secret: str
    refresh_token: str


@dataclass
class User:
    login: str
    password: str
    email: str
    username: str
    external_id: str
    first_name: str
    last_name: str
    account_numbers: list[str]
    oauth_clients: list[OAuthClient]
    remember_tokens: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Token:
    value: str
    login: str
    kind: Literal["oauth", "session"]
    expires_at: datetime


@dataclass
class Fault:
    """Make requests whose path starts with ``path_prefix`` fail and/or hang.

    By default the fault strikes before the broker handles the request (nothing happens);
    with ``after`` the broker handles it first (an order is placed) and only the answer is
    delayed or replaced: the "did the broker get it?" case.
    """

    path_prefix: str
    status: int | None = None
    delay_seconds: float = 0.0
    method: str | None = None
    remaining: int | None = None  # None: until cleared
    after: bool = False

    def matches(self, method: str, path: str) -> bool:
        if self.remaining is not None and self.remaining <= 0:
            return False
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return path.startswith(self.path_prefix)


@dataclass
class ReceivedOrder:
    """One order request that reached the broker (placed or replaced, never a dry-run)."""

    seq: int
    kind: Literal["order", "complex-order", "replace"]
    account_number: str
    received_at: datetime
    body: dict[str, object]
    outcome: str = "pending"  # "accepted" or the error code
    order_ids: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class SeenRequest:
    """One request that reached the broker's API (test controls excluded), as sent."""

    method: str
    raw_path: str  # path and query, still percent-encoded
    received_at: datetime
