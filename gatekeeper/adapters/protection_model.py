"""A portfolio protection as the data layer returns it, and who changes one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal

from gatekeeper.limits import StopMode

# The settings a caller may set, in the order the SQL of protections.py takes them ($3...).
SETTING_FIELDS: tuple[str, ...] = (
    "cash_reserve_percentage",
    "max_daily_loss_percentage",
    "max_single_trade_percentage",
    "max_portfolio_exposure_percentage",
    "max_position_concentration_percentage",
    "max_daily_trades",
    "email_alerts_enabled",
    "active",
    "emergency_stop_mode",
    "price_collar_equity_percentage",
    "price_collar_option_percentage",
    "price_collar_option_width_multiple",
    "price_collar_future_percentage",
    "max_order_quantity_equity",
    "max_order_quantity_equity_option",
    "max_order_quantity_future",
    "max_order_quantity_future_option",
    "cancel_working_orders_on_stop",
)
STOP_FIELDS = (
    "emergency_stop_triggered_at",
    "emergency_stop_triggered_by",
    "emergency_stop_reason",
    "emergency_stop_active_mode",
)
# The mode of a stop when neither the trigger nor the protection names one (see
# sql/0023_emergency_stop_mode_optional.sql): an automatic stop must still let the account be
# flattened; a person pressing stop without a mode means stop everything.
AUTOMATIC_STOP_MODE: StopMode = "reduce_only"
MANUAL_STOP_MODE: StopMode = "halt"


def effective_stop_mode(
    requested: StopMode | None, setting: StopMode | None, *, automatic: bool
) -> StopMode:
    """The mode a stop triggered now applies: the trigger's, else the protection's setting,
    else reduce_only for an automatic (system) stop and halt for a manual one."""
    if requested is not None:
        return requested
    if setting is not None:
        return setting
    return AUTOMATIC_STOP_MODE if automatic else MANUAL_STOP_MODE


# How much each mode lets through: reduce_only (risk-reducing orders) is looser than halt.
_LETS_THROUGH: dict[StopMode, int] = {"halt": 0, "reduce_only": 1}


def is_looser(mode: StopMode, than: StopMode) -> bool:
    """True when a stop in ``mode`` lets orders through that one in ``than`` would refuse."""
    return _LETS_THROUGH[mode] > _LETS_THROUGH[than]


@dataclass(frozen=True)
class Protection:
    id: int
    user_id: int
    account_id: str
    cash_reserve_percentage: Decimal
    max_daily_loss_percentage: Decimal
    max_single_trade_percentage: Decimal
    max_portfolio_exposure_percentage: Decimal
    max_position_concentration_percentage: Decimal
    max_daily_trades: int
    email_alerts_enabled: bool
    active: bool
    # The owner's setting; None: not set (the trigger decides, see effective_stop_mode).
    emergency_stop_mode: StopMode | None
    emergency_stop_triggered_at: datetime | None
    emergency_stop_triggered_by: str | None
    emergency_stop_reason: str | None
    # The effective mode of the active stop; None exactly when no stop is active.
    emergency_stop_active_mode: StopMode | None
    # Fat-finger checks (sql/0024); None: off.
    price_collar_equity_percentage: Decimal | None
    price_collar_option_percentage: Decimal | None
    price_collar_option_width_multiple: Decimal | None
    price_collar_future_percentage: Decimal | None
    max_order_quantity_equity: int | None
    max_order_quantity_equity_option: int | None
    max_order_quantity_future: int | None
    max_order_quantity_future_option: int | None
    created_at: datetime
    updated_at: datetime
    # Cancel the account's working orders that are not risk-reducing when a stop on this
    # protection becomes active (sql/0026).
    cancel_working_orders_on_stop: bool = True

    @property
    def emergency_stop_active(self) -> bool:
        return self.emergency_stop_triggered_at is not None


@dataclass(frozen=True)
class Actor:
    """Who makes a change: the name recorded, the channel, and the token behind it if any."""

    name: str
    via: Literal["api", "cli", "system"]
    user_id: int | None = None
    token_id: int | None = None
