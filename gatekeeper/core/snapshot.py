"""The inputs of ``evaluate()``: account state and protection limits, as frozen values.

Builders from the broker's payloads live in :mod:`gatekeeper.core.payloads`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType

from gatekeeper.core.instruments import Instrument
from gatekeeper.core.order import Order
from gatekeeper.core.symbols import InstrumentType, OptionInfo, parse_option_symbol, underlying_of


@dataclass(frozen=True, slots=True)
class Quote:
    """A live quote. Missing or non-positive prices are treated as unavailable."""

    symbol: str
    bid: Decimal | None = None
    ask: Decimal | None = None
    mid: Decimal | None = None
    mark: Decimal | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Position:
    """A held position; ``quantity`` is signed (negative = short)."""

    symbol: str
    instrument_type: InstrumentType
    quantity: Decimal
    multiplier: Decimal = Decimal(1)
    mark: Decimal | None = None
    close_price: Decimal | None = None
    underlying: str = ""

    @property
    def underlying_symbol(self) -> str:
        """The underlying (derived from the symbol when not given)."""
        return self.underlying or underlying_of(self.instrument_type, self.symbol)

    @property
    def option(self) -> OptionInfo | None:
        """Strike, kind and expiry for option positions."""
        return parse_option_symbol(self.instrument_type, self.symbol)


@dataclass(frozen=True, slots=True)
class WorkingOrder:
    """A resting order at the broker (or one we allowed that is still in flight).

    Orders sharing a ``complex_order_id`` are one complex order: its ``contingent`` members
    (status Contingent) wait for the others to fill; live members of the same complex order
    without contingent siblings are alternatives (OCO): at most one of them fills.
    """

    order: Order
    order_id: str | None = None
    complex_order_id: str | None = None
    contingent: bool = False


@dataclass(frozen=True, slots=True)
class TradingStatus:
    """The broker's own restrictions on the account (``/accounts/{a}/trading-status``)."""

    is_closing_only: bool = False
    is_frozen: bool = False
    is_closed: bool = False
    is_in_margin_call: bool = False


class StartOfDaySource(StrEnum):
    """Where the start-of-day NLV comes from."""

    BROKER_BOD = "broker_bod"  # the broker's beginning-of-day balance snapshot
    FIRST_SIGHT = "first_sight"  # the NLV at the day's first decision: the broker had none


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    """Everything ``evaluate()`` knows about the account, as of ``fetched_at``.

    ``instruments`` gives each symbol's group, multiplier and quoted underlying, as the
    broker's instrument look-ups say (stock and crypto need none). ``day_net_deposits``: the
    day's deposits minus withdrawals not contained in ``start_of_day_nlv`` (excluded from the
    day's P&L).
    """

    account_number: str
    nlv: Decimal
    cash_balance: Decimal
    start_of_day_nlv: Decimal | None
    fetched_at: datetime
    positions: tuple[Position, ...] = ()
    working_orders: tuple[WorkingOrder, ...] = ()
    quotes: Mapping[str, Quote] = field(default_factory=dict)
    instruments: Mapping[str, Instrument] = field(default_factory=dict)
    trading_status: TradingStatus = field(default_factory=TradingStatus)
    start_of_day_source: StartOfDaySource | None = None
    day_net_deposits: Decimal = Decimal(0)

    def __post_init__(self) -> None:
        if self.fetched_at.tzinfo is None:
            raise ValueError("fetched_at must be timezone-aware")
        # Frozen through and through: what evaluate() derives from a snapshot is cached for
        # the snapshot (gatekeeper.core.prepared), so its content must never change.
        object.__setattr__(self, "positions", tuple(self.positions))
        object.__setattr__(self, "working_orders", tuple(self.working_orders))
        object.__setattr__(self, "quotes", MappingProxyType(dict(self.quotes)))
        object.__setattr__(self, "instruments", MappingProxyType(dict(self.instruments)))


@dataclass(frozen=True, slots=True)
class RiskParameters:
    """How prices are trusted and how far up a short is stressed (``[risk]`` settings).

    ``stress_up_percentage``: the highest scenario price is the largest of S0 and every
    strike plus this share of S0. ``max_quote_age_seconds`` / ``max_spread_percentage`` of
    ``None`` disable that quote check.
    """

    stress_up_percentage: Decimal = Decimal(100)
    max_quote_age_seconds: Decimal | None = Decimal(300)
    max_spread_percentage: Decimal | None = Decimal(100)


class StopMode(StrEnum):
    """What an active emergency stop lets through."""

    HALT = "halt"
    REDUCE_ONLY = "reduce_only"


DEFAULT_MAX_ORDER_QUANTITY: Mapping[InstrumentType, Decimal] = {
    InstrumentType.EQUITY: Decimal(50_000),
    InstrumentType.EQUITY_OPTION: Decimal(1_000),
    InstrumentType.FUTURE: Decimal(100),
    InstrumentType.FUTURE_OPTION: Decimal(500),
}
"""Fat-finger caps per leg, by instrument type (crypto has none: its units vary too much)."""


@dataclass(frozen=True, slots=True)
class Limits:
    """One protection (``portfolio_protections`` row). Percentages are of NLV, 0-100.

    ``max_position_concentration_percentage`` / ``max_daily_trades`` of ``None`` disable
    that rule. ``is_default`` marks the configured defaults guarding an unprotected account.

    Price collars: a limit or stop price further than this from the quote on the unfavourable
    side (a buy above the ask, a sell below the bid) is refused; for options the tolerance is
    the larger of the percentage and a multiple of the bid-ask width, and a market order on an
    option whose spread is wider than the percentage is refused. ``max_order_quantity`` caps
    one leg's quantity per instrument type (shares, contracts). ``None`` disables each.
    """

    cash_reserve_percentage: Decimal
    max_daily_loss_percentage: Decimal
    max_single_trade_percentage: Decimal
    max_portfolio_exposure_percentage: Decimal
    max_position_concentration_percentage: Decimal | None = Decimal(20)
    max_daily_trades: int | None = 50
    active: bool = True
    emergency_stop_active: bool = False
    emergency_stop_mode: StopMode = StopMode.HALT
    protection_id: str = ""
    is_default: bool = False
    price_collar_equity_percentage: Decimal | None = Decimal(5)
    price_collar_option_percentage: Decimal | None = Decimal(25)
    price_collar_option_width_multiple: Decimal | None = Decimal(2)
    price_collar_future_percentage: Decimal | None = Decimal(2)
    max_order_quantity: Mapping[InstrumentType, Decimal] = field(
        default_factory=lambda: dict(DEFAULT_MAX_ORDER_QUANTITY)
    )


DEFAULT_LIMITS = Limits(
    cash_reserve_percentage=Decimal(25),
    max_daily_loss_percentage=Decimal(5),
    max_single_trade_percentage=Decimal(10),
    max_portfolio_exposure_percentage=Decimal(75),
    max_position_concentration_percentage=Decimal(20),
    max_daily_trades=50,
    protection_id="default",
    is_default=True,
)
"""The seed's Step 7 values: guard an account that has no protection of its own."""
