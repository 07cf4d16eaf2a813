"""Request and response shapes of the admin API (pydantic; also the OpenAPI schemas).

Ranges come from :mod:`gatekeeper.limits`, the one definition the database's CHECK
constraints are tested against. Requests reject unknown fields.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from gatekeeper.adapters.history import Change, EmergencyEvent
from gatekeeper.adapters.protections import Protection
from gatekeeper.checks import TodayFigures
from gatekeeper.limits import INTEGER_FIELDS, LIMITS_BY_FIELD, PERCENT_DECIMAL_PLACES, StopMode
from gatekeeper.web.cancel_models import WorkingOrdersOnStop

ACCOUNT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
Text = Annotated[str, Field(min_length=1, max_length=500, pattern=r"\S")]
Name = Annotated[str, Field(min_length=1, max_length=100, pattern=r"\S")]


def _bounds(field: str) -> dict[str, Any]:
    limit = LIMITS_BY_FIELD[field]
    low: Decimal | int = limit.lower
    high: Decimal | int = limit.upper
    if field in INTEGER_FIELDS:
        low, high = int(limit.lower), int(limit.upper)
    bounds: dict[str, Any] = {
        ("ge" if limit.lower_inclusive else "gt"): low,
        ("le" if limit.upper_inclusive else "lt"): high,
        "description": f"{limit.describe()} (CHECK constraint {limit.constraint})",
    }
    if field not in INTEGER_FIELDS:
        bounds["decimal_places"] = PERCENT_DECIMAL_PLACES
    return bounds


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProtectionSettings(_Request):
    """Settings of a protection; on update, only the fields given change."""

    cash_reserve_percentage: Decimal | None = Field(None, **_bounds("cash_reserve_percentage"))
    max_daily_loss_percentage: Decimal | None = Field(None, **_bounds("max_daily_loss_percentage"))
    max_single_trade_percentage: Decimal | None = Field(
        None, **_bounds("max_single_trade_percentage")
    )
    max_portfolio_exposure_percentage: Decimal | None = Field(
        None, **_bounds("max_portfolio_exposure_percentage")
    )
    max_position_concentration_percentage: Decimal | None = Field(
        None, **_bounds("max_position_concentration_percentage")
    )
    max_daily_trades: StrictInt | None = Field(None, **_bounds("max_daily_trades"))
    email_alerts_enabled: StrictBool | None = None
    active: StrictBool | None = None
    emergency_stop_mode: StopMode | None = Field(
        None,
        description=(
            "What a stop on this protection lets through. halt: nothing; reduce_only: verified"
            " closing orders. null: not set, so an automatic (daily-loss) stop applies"
            " reduce_only and a manual stop without a mode halt. On update, a new halt or"
            " reduce_only also switches an active stop to it; null unsets the mode and leaves"
            " an active stop as it is. Absent on create: the configured"
            " admin.default_emergency_stop_mode (unset by default)"
        ),
    )

    price_collar_equity_percentage: Decimal | None = Field(
        None, **_bounds("price_collar_equity_percentage")
    )
    price_collar_option_percentage: Decimal | None = Field(
        None, **_bounds("price_collar_option_percentage")
    )
    price_collar_option_width_multiple: Decimal | None = Field(
        None, **_bounds("price_collar_option_width_multiple")
    )
    price_collar_future_percentage: Decimal | None = Field(
        None, **_bounds("price_collar_future_percentage")
    )
    max_order_quantity_equity: StrictInt | None = Field(
        None, **_bounds("max_order_quantity_equity")
    )
    max_order_quantity_equity_option: StrictInt | None = Field(
        None, **_bounds("max_order_quantity_equity_option")
    )
    max_order_quantity_future: StrictInt | None = Field(
        None, **_bounds("max_order_quantity_future")
    )
    max_order_quantity_future_option: StrictInt | None = Field(
        None, **_bounds("max_order_quantity_future_option")
    )
    cancel_working_orders_on_stop: StrictBool | None = Field(
        None,
        description="when a stop on this protection becomes active, cancel the account's"
        " working orders that are not risk-reducing (default true)",
    )

    def given(self) -> dict[str, Any]:
        """The settings the request set. null counts as not set, except for
        ``emergency_stop_mode``, where it means "unset the mode"."""
        return {
            k: v
            for k, v in self.model_dump(exclude_unset=True).items()
            if v is not None or k == "emergency_stop_mode"
        }


class ProtectionCreate(ProtectionSettings):
    account_id: str = Field(pattern=ACCOUNT_ID_PATTERN, description="TastyTrade account number")


class CreateProtectionRequest(_Request):
    portfolio_protection: ProtectionCreate


class UpdateProtectionRequest(_Request):
    portfolio_protection: ProtectionSettings


class EmergencyStopRequest(_Request):
    reason: Text
    triggered_by: Name
    mode: StopMode | None = Field(
        None,
        description=(
            "this stop's mode (the protection's setting is not changed). Default: the"
            " protection's emergency_stop_mode, else halt. A mode looser than that default"
            " (reduce_only where it is halt) needs an admin token: 403 insufficient_role"
        ),
    )


class ClearEmergencyStopRequest(_Request):
    confirm: Literal["true"] = Field(description='must be the string "true"')
    cleared_by: Name


class ValidateTradeRequest(_Request):
    account_id: str = Field(pattern=ACCOUNT_ID_PATTERN)
    order: dict[str, Any] = Field(
        description=(
            "the seed's simple form ({symbol, quantity, order_type, action, price?,"
            " time_in_force?}) or TastyTrade's dasherized order ({order-type, time-in-force,"
            " price?, price-effect?, legs: [{instrument-type, symbol, quantity, action}]});"
            " parsed by the same parser as the proxy's order path"
        ),
        json_schema_extra={
            "examples": [
                {
                    "symbol": "AAPL",
                    "quantity": 100,
                    "order_type": "limit",
                    "action": "buy-to-open",
                    "price": 150.0,
                }
            ]
        },
    )


# -- responses --------------------------------------------------------------------------------


class ProtectionOut(BaseModel):
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
    emergency_stop_mode: StopMode | None = Field(
        description="the protection's setting; null: not set explicitly"
    )
    emergency_stop_active: bool
    emergency_stop_active_mode: StopMode | None = Field(
        description="the effective mode of the active stop; null when no stop is active"
    )
    emergency_stop_triggered_at: datetime | None
    emergency_stop_triggered_by: str | None
    emergency_stop_reason: str | None
    price_collar_equity_percentage: Decimal | None
    price_collar_option_percentage: Decimal | None
    price_collar_option_width_multiple: Decimal | None
    price_collar_future_percentage: Decimal | None
    max_order_quantity_equity: int | None
    max_order_quantity_equity_option: int | None
    max_order_quantity_future: int | None
    max_order_quantity_future_option: int | None
    cancel_working_orders_on_stop: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, protection: Protection) -> ProtectionOut:
        return cls.model_validate(
            {**protection.__dict__, "emergency_stop_active": protection.emergency_stop_active}
        )


class ProtectionResponse(BaseModel):
    portfolio_protection: ProtectionOut


class ProtectionListResponse(BaseModel):
    portfolio_protections: list[ProtectionOut]


class EmergencyStopResponse(BaseModel):
    portfolio_protection: ProtectionOut
    already_active: bool = Field(description="true when the stop was active before this call")


class StatusResponse(BaseModel):
    account_id: str
    emergency_stop_active: bool = Field(
        description="any of these protections is stopped, or the global stop is active"
    )
    global_emergency_stop_active: bool = False
    protections: list[ProtectionOut]
    working_orders_on_stop: WorkingOrdersOnStop | None = Field(
        None, description="what the active stops did with the account's working orders"
    )
    today: TodayFigures | None = Field(
        None,
        description="today's figures (NLV, day P&L %, cash after %, exposure %, largest"
        " concentration, trades today vs limit) as of the last decision; null before any",
    )


class ChangeOut(BaseModel):
    id: int
    action: str
    changed_by: str
    user_id: int | None
    token_id: int | None
    via: str
    old_values: dict[str, Any] | None
    new_values: dict[str, Any]
    changed_at: datetime

    @classmethod
    def of(cls, change: Change) -> ChangeOut:
        return cls.model_validate(change.__dict__)


class ChangeListResponse(BaseModel):
    changes: list[ChangeOut]


class EmergencyEventOut(BaseModel):
    id: int
    event: Literal["triggered", "cleared"]
    mode: StopMode | None
    actor: str
    reason: str | None
    user_id: int | None
    token_id: int | None
    via: str
    occurred_at: datetime

    @classmethod
    def of(cls, event: EmergencyEvent) -> EmergencyEventOut:
        return cls.model_validate(event.__dict__)


class EmergencyEventListResponse(BaseModel):
    emergency_events: list[EmergencyEventOut]


class ErrorItem(BaseModel):
    field: str
    code: str
    message: str
    allowed: str | None = None
    constraint: str | None = None


class ErrorDetail(BaseModel):
    code: str
    message: str
    errors: list[ErrorItem] | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail
