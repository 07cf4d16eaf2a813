"""The typed order model (frozen pydantic models, TastyTrade's dasherized keys as aliases).

The model is read-only: the body forwarded to the broker is always the original bytes, so the
model never has to round-trip unknown keys. Validation is strict where a lenient reading could
make the broker see a different order than the one we checked.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from enum import StrEnum
from functools import reduce
from math import gcd
from typing import Annotated, Literal, Self

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from gatekeeper.core.symbols import (
    InstrumentType,
    OptionInfo,
    is_valid_symbol,
    parse_option_symbol,
    underlying_of,
)

MAX_DECIMAL = Decimal(10) ** 9
MAX_QUANTITY = Decimal(1_000_000)
MAX_LEGS = 4
_DECIMAL_TEXT = re.compile(r"[+-]?(?:\d{1,12}(?:\.\d{0,10})?|\.\d{1,10})")
_DATE_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}")


class OrderType(StrEnum):
    """``order-type``."""

    LIMIT = "Limit"
    MARKET = "Market"
    MARKETABLE_LIMIT = "Marketable Limit"
    STOP = "Stop"
    STOP_LIMIT = "Stop Limit"
    NOTIONAL_MARKET = "Notional Market"


class TimeInForce(StrEnum):
    """``time-in-force``."""

    DAY = "Day"
    GTC = "GTC"
    GTD = "GTD"
    EXT = "Ext"
    EXT_OVERNIGHT = "Ext Overnight"
    GTC_EXT = "GTC Ext"
    GTC_EXT_OVERNIGHT = "GTC Ext Overnight"
    IOC = "IOC"


class PriceEffect(StrEnum):
    """``price-effect`` / ``value-effect``: Debit = the account pays."""

    DEBIT = "Debit"
    CREDIT = "Credit"


class Action(StrEnum):
    """A leg's ``action``."""

    BUY_TO_OPEN = "Buy to Open"
    SELL_TO_OPEN = "Sell to Open"
    BUY_TO_CLOSE = "Buy to Close"
    SELL_TO_CLOSE = "Sell to Close"
    BUY = "Buy"
    SELL = "Sell"

    @property
    def is_buy(self) -> bool:
        """Whether the leg buys (adds long / covers short)."""
        return self in (Action.BUY_TO_OPEN, Action.BUY_TO_CLOSE, Action.BUY)


class ComplexType(StrEnum):
    """``type`` of a complex order."""

    OTO = "OTO"
    OCO = "OCO"
    OTOCO = "OTOCO"
    PAIRS = "PAIRS"


def to_decimal(value: object) -> Decimal:
    """A finite Decimal from a JSON number or decimal string; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError("must be a number, not a boolean")
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float):
        number = Decimal(repr(value))
    elif isinstance(value, str):
        if _DECIMAL_TEXT.fullmatch(value) is None:
            raise ValueError("must be a plain decimal number")
        number = Decimal(value)
    else:
        raise ValueError("must be a number or a decimal string")
    if not number.is_finite():
        raise ValueError("must be a finite number")
    if abs(number) > MAX_DECIMAL:
        raise ValueError(f"must not exceed {MAX_DECIMAL:,} in magnitude")
    if number != 0 and number.as_tuple().exponent < -10:  # type: ignore[operator]
        raise ValueError("has more than 10 decimal places")
    return number


def _to_date(value: object) -> date:
    if isinstance(value, date):
        return value
    if not isinstance(value, str) or _DATE_TEXT.fullmatch(value) is None:
        raise ValueError("must be a date as YYYY-MM-DD")
    return date.fromisoformat(value)


def _non_negative(value: Decimal) -> Decimal:
    if value < 0:
        raise ValueError("must not be negative")
    return value


Dec = Annotated[Decimal, BeforeValidator(to_decimal)]
Amount = Annotated[Decimal, BeforeValidator(to_decimal), AfterValidator(_non_negative)]
Day = Annotated[date, BeforeValidator(_to_date)]


def _dasherize(name: str) -> str:
    return name.replace("_", "-")


_CONFIG = ConfigDict(
    frozen=True,
    extra="ignore",
    alias_generator=_dasherize,
    validate_by_alias=True,
    validate_by_name=True,
    strict=False,
    str_strip_whitespace=False,
)


class Leg(BaseModel):
    """One leg. ``quantity`` is ``None`` only in Notional Market orders."""

    model_config = _CONFIG

    instrument_type: InstrumentType
    symbol: str = Field(min_length=1, max_length=64)
    quantity: Dec | None = None
    action: Action

    @model_validator(mode="after")
    def _check(self) -> Self:
        if not is_valid_symbol(self.instrument_type, self.symbol):
            raise ValueError(f"symbol is not a valid {self.instrument_type.value} symbol")
        if self.action in (Action.BUY, Action.SELL) and self.instrument_type not in (
            InstrumentType.FUTURE,
        ):
            raise ValueError(f"action {self.action.value!r} is only valid for futures")
        if self.quantity is not None:
            if self.quantity <= 0:
                raise ValueError("quantity must be greater than 0")
            if self.quantity > MAX_QUANTITY:
                raise ValueError(f"quantity must not exceed {MAX_QUANTITY:,}")
            fractional_ok = self.instrument_type in (
                InstrumentType.EQUITY,
                InstrumentType.CRYPTOCURRENCY,
            )
            if not fractional_ok and self.quantity != self.quantity.to_integral_value():
                raise ValueError("quantity must be a whole number of contracts")
        return self

    @property
    def underlying(self) -> str:
        """The underlying symbol (concentration groups by it)."""
        return underlying_of(self.instrument_type, self.symbol)

    @property
    def option(self) -> OptionInfo | None:
        """Strike, kind and expiry for option legs, else ``None``."""
        return parse_option_symbol(self.instrument_type, self.symbol)

    @property
    def is_buy(self) -> bool:
        """Whether this leg buys."""
        return self.action.is_buy


_STRICT = ConfigDict(**{**_CONFIG, "extra": "forbid"})


class RuleCondition(BaseModel):
    """One of ``rules.conditions``: route (or cancel) the order when ``symbol``'s price
    crosses ``threshold``. Anything not understood refuses the order (fail closed)."""

    model_config = _STRICT

    action: Literal["route", "cancel"]
    symbol: str = Field(min_length=1, max_length=64)
    instrument_type: InstrumentType
    indicator: Literal["last", "nat"]
    comparator: Literal["gte", "lte"]
    threshold: Amount
    price_components: tuple[()] = ()


class OrderRules(BaseModel):
    """``rules``: when the broker routes or cancels the order. Unknown keys are refused."""

    model_config = _STRICT

    route_after: str | None = Field(default=None, max_length=40)
    cancel_at: str | None = Field(default=None, max_length=40)
    conditions: tuple[RuleCondition, ...] = Field(default=(), max_length=4)

    @property
    def route_thresholds(self) -> tuple[RuleCondition, ...]:
        """The conditions that route the order at a price other than today's."""
        return tuple(c for c in self.conditions if c.action == "route")


_PRICED = (OrderType.LIMIT, OrderType.STOP_LIMIT)
_TRIGGERED = (OrderType.STOP, OrderType.STOP_LIMIT)


class Order(BaseModel):
    """A single order as TastyTrade's ``POST /orders`` body describes it."""

    model_config = _CONFIG

    order_type: OrderType
    time_in_force: TimeInForce
    gtc_date: Day | None = None
    price: Amount | None = None
    price_effect: PriceEffect | None = None
    stop_trigger: Amount | None = None
    value: Amount | None = None
    value_effect: PriceEffect | None = None
    legs: tuple[Leg, ...] = Field(min_length=1, max_length=MAX_LEGS)
    rules: OrderRules | None = None

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.order_type in _PRICED and self.price is None:
            raise ValueError(f"price is required for {self.order_type.value} orders")
        if self.price is not None and self.price_effect is None:
            raise ValueError("price-effect is required with price")
        if self.order_type in _TRIGGERED and not self.stop_trigger:
            raise ValueError(f"stop-trigger is required for {self.order_type.value} orders")
        if self.time_in_force is TimeInForce.GTD and self.gtc_date is None:
            raise ValueError("gtc-date is required for GTD orders")
        if self.order_type is OrderType.NOTIONAL_MARKET:
            if not self.value or self.value_effect is None:
                raise ValueError("value and value-effect are required for Notional Market")
            if len(self.legs) != 1:
                raise ValueError("a Notional Market order has exactly one leg")
            if self.legs[0].quantity is not None:
                raise ValueError("a Notional Market leg has no quantity: value says how much")
            paying = PriceEffect.DEBIT if self.legs[0].is_buy else PriceEffect.CREDIT
            if self.value_effect is not paying:
                raise ValueError(
                    f"value-effect must be {paying.value} for a {self.legs[0].action.value} leg"
                )
        elif any(leg.quantity is None for leg in self.legs):
            raise ValueError("every leg needs a quantity")
        symbols = [leg.symbol for leg in self.legs]
        if len(set(symbols)) != len(symbols):
            raise ValueError("two legs have the same symbol")
        return self

    @property
    def has_limit_price(self) -> bool:
        """Whether ``price`` is a limit the order cannot fill beyond."""
        return self.price is not None and self.order_type in (
            *_PRICED,
            OrderType.MARKETABLE_LIMIT,
        )

    @property
    def units(self) -> Decimal:
        """How many times the order's per-unit price applies (gcd of leg quantities)."""
        quantities = [leg.quantity for leg in self.legs if leg.quantity is not None]
        if not quantities:
            return Decimal(1)
        if len(quantities) == 1:
            return quantities[0]
        if all(q == q.to_integral_value() for q in quantities):
            return Decimal(reduce(gcd, (int(q) for q in quantities)))
        # fractional multi-leg: the largest count never understates a debit
        return max(quantities)


class ComplexOrder(BaseModel):
    """``POST /complex-orders``: OTO, OCO, OTOCO or PAIRS."""

    model_config = _CONFIG

    type: ComplexType
    trigger_order: Order | None = None
    orders: tuple[Order, ...] = Field(min_length=1, max_length=2)

    @model_validator(mode="after")
    def _check(self) -> Self:
        needs_trigger = self.type in (ComplexType.OTO, ComplexType.OTOCO)
        if needs_trigger != (self.trigger_order is not None):
            state = "requires" if needs_trigger else "must not have"
            raise ValueError(f"a {self.type.value} order {state} a trigger-order")
        expected = 1 if self.type is ComplexType.OTO else 2
        if len(self.orders) != expected:
            raise ValueError(f"a {self.type.value} order has exactly {expected} orders")
        return self

    @property
    def contained(self) -> tuple[Order, ...]:
        """Every order it may place: the trigger first, then the others."""
        head = (self.trigger_order,) if self.trigger_order is not None else ()
        return (*head, *self.orders)


class OrderPatch(BaseModel):
    """A replace body (``PUT``/``PATCH /orders/{id}``): any order field, legs optional."""

    model_config = _CONFIG

    order_type: OrderType | None = None
    time_in_force: TimeInForce | None = None
    gtc_date: Day | None = None
    price: Amount | None = None
    price_effect: PriceEffect | None = None
    stop_trigger: Amount | None = None
    value: Amount | None = None
    value_effect: PriceEffect | None = None
    legs: tuple[Leg, ...] | None = Field(default=None, min_length=1, max_length=MAX_LEGS)
