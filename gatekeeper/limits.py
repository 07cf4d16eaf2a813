"""The allowed range of every protection setting, defined once.

The database's CHECK constraints (``sql/0002_create_portfolio_protections.sql``) enforce the
same ranges as the last line of defence; the admin API's request models are built from this
table, and a test reads ``pg_constraint`` to prove the two say the same thing. When the
database does fire a constraint anyway, :func:`limit_for_constraint` turns its name back into
the same message the API gives.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType
from typing import Literal

StopMode = Literal["halt", "reduce_only"]
STOP_MODES: tuple[StopMode, ...] = ("halt", "reduce_only")


@dataclass(frozen=True)
class Limit:
    """``lower <(=) field <(=) upper``, enforced by the CHECK constraint ``constraint``."""

    field: str
    lower: Decimal
    lower_inclusive: bool
    upper: Decimal
    upper_inclusive: bool
    constraint: str

    def allows(self, value: Decimal | int) -> bool:
        above = value >= self.lower if self.lower_inclusive else value > self.lower
        below = value <= self.upper if self.upper_inclusive else value < self.upper
        return above and below

    def describe(self) -> str:
        """The range in words, e.g. ``between 20 and 50`` or ``greater than 0 and at most 15``."""
        if self.lower_inclusive and self.upper_inclusive:
            return f"between {_plain(self.lower)} and {_plain(self.upper)}"
        low = "at least" if self.lower_inclusive else "greater than"
        high = "at most" if self.upper_inclusive else "less than"
        return f"{low} {_plain(self.lower)} and {high} {_plain(self.upper)}"

    def message(self, value: object) -> str:
        """E.g. ``cash_reserve_percentage must be between 20 and 50 (cash_reserve_range_check);
        got 10.0``."""
        return f"{self.field} must be {self.describe()} ({self.constraint}); got {value}"


def _plain(value: Decimal) -> str:
    """``Decimal("20.0")`` -> ``20``; ``Decimal("0.5")`` -> ``0.5``."""
    text = format(value.normalize(), "f")
    return text


def _limit(field: str, low: str, low_inc: bool, high: str, high_inc: bool, name: str) -> Limit:
    return Limit(field, Decimal(low), low_inc, Decimal(high), high_inc, name)


# The seed's four constraints, names and ranges exactly, then Gatekeeper's own.
LIMITS: tuple[Limit, ...] = (
    _limit("cash_reserve_percentage", "20", True, "50", True, "cash_reserve_range_check"),
    _limit("max_daily_loss_percentage", "0", False, "15", True, "daily_loss_range_check"),
    _limit("max_single_trade_percentage", "0", False, "20", True, "single_trade_range_check"),
    _limit("max_portfolio_exposure_percentage", "50", True, "85", True, "exposure_range_check"),
    _limit(
        "max_position_concentration_percentage",
        "0",
        False,
        "100",
        True,
        "concentration_range_check",
    ),
    _limit("max_daily_trades", "1", True, "10000", True, "daily_trades_range_check"),
    # Fat-finger checks (sql/0024): price collars and quantity caps per instrument type.
    _limit("price_collar_equity_percentage", "0", False, "50", True,
           "price_collar_equity_range_check"),
    _limit("price_collar_option_percentage", "0", False, "500", True,
           "price_collar_option_range_check"),
    _limit("price_collar_option_width_multiple", "0", False, "50", True,
           "price_collar_option_width_range_check"),
    _limit("price_collar_future_percentage", "0", False, "20", True,
           "price_collar_future_range_check"),
    _limit("max_order_quantity_equity", "1", True, "1000000", True,
           "max_order_quantity_equity_range_check"),
    _limit("max_order_quantity_equity_option", "1", True, "100000", True,
           "max_order_quantity_equity_option_range_check"),
    _limit("max_order_quantity_future", "1", True, "10000", True,
           "max_order_quantity_future_range_check"),
    _limit("max_order_quantity_future_option", "1", True, "10000", True,
           "max_order_quantity_future_option_range_check"),
)  # fmt: skip

# Settings stored as whole numbers (the others are numeric(5,2)).
INTEGER_FIELDS = frozenset(
    {
        "max_daily_trades",
        "max_order_quantity_equity",
        "max_order_quantity_equity_option",
        "max_order_quantity_future",
        "max_order_quantity_future_option",
    }
)

LIMITS_BY_FIELD = MappingProxyType({limit.field: limit for limit in LIMITS})
LIMITS_BY_CONSTRAINT = MappingProxyType({limit.constraint: limit for limit in LIMITS})

# Percentages are stored as numeric(5,2).
PERCENT_DECIMAL_PLACES = 2

# The seed's Step 7: conservative defaults for a new protection.
DEFAULTS: MappingProxyType[str, Decimal | int | bool] = MappingProxyType(
    {
        "cash_reserve_percentage": Decimal("25.0"),
        "max_daily_loss_percentage": Decimal("5.0"),
        "max_single_trade_percentage": Decimal("10.0"),
        "max_portfolio_exposure_percentage": Decimal("75.0"),
        "max_position_concentration_percentage": Decimal("20.0"),
        "max_daily_trades": 50,
        "email_alerts_enabled": True,
        "active": True,
        "price_collar_equity_percentage": Decimal("5.0"),
        "price_collar_option_percentage": Decimal("25.0"),
        "price_collar_option_width_multiple": Decimal("2.0"),
        "price_collar_future_percentage": Decimal("2.0"),
        "max_order_quantity_equity": 50_000,
        "max_order_quantity_equity_option": 1_000,
        "max_order_quantity_future": 100,
        "max_order_quantity_future_option": 500,
        "cancel_working_orders_on_stop": True,
    }
)

# Other CHECK constraints on portfolio_protections, in words (for the 422 message).
OTHER_CONSTRAINTS = MappingProxyType(
    {
        "emergency_stop_mode_check": "emergency_stop_mode must be one of: halt, reduce_only",
        "account_id_format_check": (
            "account_id must be 1-64 letters, digits, '-' or '_', starting with a letter or digit"
        ),
        "emergency_stop_state_check": (
            "an emergency stop needs its time, actor and reason together"
        ),
    }
)


def limit_for_constraint(name: str) -> Limit | None:
    """The range enforced by the CHECK constraint called ``name``, if it is one of ours."""
    return LIMITS_BY_CONSTRAINT.get(name)


def violations(values: dict[str, object]) -> list[Limit]:
    """The limits that ``values`` (field -> number) break; fields without a limit are ignored."""
    broken: list[Limit] = []
    for field, value in values.items():
        limit = LIMITS_BY_FIELD.get(field)
        if limit is not None and isinstance(value, Decimal | int) and not limit.allows(value):
            broken.append(limit)
    return broken
