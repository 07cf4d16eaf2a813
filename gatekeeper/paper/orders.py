"""Reading an order request body (dasherized JSON) into a PaperOrder, or saying what is wrong.

Malformed bodies are a 400 with one nested item per problem; well-formed orders the paper
broker will not take (GTC market orders, buying for a credit, …) are a 422 preflight failure.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from gatekeeper.paper.catalog import DEFAULT_CATALOG, Catalog
from gatekeeper.paper.errors import InvalidRequest, PreflightCheckFailure, reason
from gatekeeper.paper.instruments import terms_of
from gatekeeper.paper.model import (
    CREDIT,
    DEBIT,
    EQUITY,
    FUTURE,
    TRADED_TYPES,
    OrderLeg,
    PaperOrder,
)

ORDER_TYPES = frozenset({"Limit", "Market", "Marketable Limit", "Stop", "Stop Limit"})
PRICED_TYPES = frozenset({"Limit", "Marketable Limit", "Stop Limit"})
STOP_TYPES = frozenset({"Stop", "Stop Limit"})
TIME_IN_FORCES = frozenset(
    {"Day", "GTC", "GTD", "Ext", "Ext Overnight", "GTC Ext", "GTC Ext Overnight", "IOC"}
)
ACTIONS = frozenset({"Buy to Open", "Buy to Close", "Sell to Open", "Sell to Close"})
# Outright futures may also be bought and sold without saying whether that opens or closes.
FUTURE_ACTIONS = ACTIONS | {"Buy", "Sell"}
# Options and futures trade in whole contracts; stock may be fractional.
CONTRACT_TYPES = TRADED_TYPES - {EQUITY}
MAX_LEGS = 4


def _one_of(value: object, options: Collection[str]) -> bool:
    """Membership that is safe for any JSON value (lists and objects are unhashable)."""
    return isinstance(value, str) and value in options


def parse_decimal(value: object) -> Decimal | None:
    """A finite Decimal from a JSON string or number; None when it is not one."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _parse_leg(
    index: int, raw: object, catalog: Catalog, problems: list[dict[str, str]]
) -> OrderLeg | None:
    where = f"legs[{index}]"
    if not isinstance(raw, Mapping):
        problems.append(reason("invalid_leg", f"{where} must be an object"))
        return None
    instrument_type = raw.get("instrument-type")
    symbol = raw.get("symbol")
    action = raw.get("action")
    quantity = parse_decimal(raw.get("quantity"))
    terms = None
    if not _one_of(instrument_type, TRADED_TYPES):
        problems.append(
            reason(
                "invalid_instrument_type",
                f"{where}: instrument-type {instrument_type!r} is not supported",
            )
        )
    if not isinstance(symbol, str) or not symbol:
        problems.append(reason("invalid_symbol", f"{where}: symbol is required"))
    elif isinstance(instrument_type, str) and instrument_type in TRADED_TYPES:
        terms = terms_of(symbol, instrument_type, catalog)
        if terms is None:
            problems.append(
                reason(
                    "invalid_symbol", f"{where}: {symbol!r} is not a valid {instrument_type} symbol"
                )
            )
    if not _one_of(action, FUTURE_ACTIONS if instrument_type == FUTURE else ACTIONS):
        problems.append(reason("invalid_action", f"{where}: action {action!r} is not valid"))
        terms = None
    if quantity is None or quantity <= 0:
        problems.append(reason("invalid_quantity", f"{where}: quantity must be a positive number"))
        terms = None
    elif _one_of(instrument_type, CONTRACT_TYPES) and quantity != quantity.to_integral_value():
        problems.append(reason("invalid_quantity", f"{where}: contract quantity must be whole"))
        terms = None
    if terms is None or quantity is None:
        return None
    return OrderLeg(
        str(instrument_type),
        str(symbol),
        str(action),
        quantity,
        remaining_quantity=quantity,
        terms=terms,
    )


def _optional_str(body: Mapping[str, Any], key: str, problems: list[dict[str, str]]) -> str | None:
    value = body.get(key)
    if value is None or isinstance(value, str):
        return value
    problems.append(reason("invalid_field", f"{key} must be a string"))
    return None


def parse_order(
    body: object, account_number: str, now: datetime, *, catalog: Catalog = DEFAULT_CATALOG
) -> PaperOrder:
    """Validate an order body; raise InvalidRequest (400) or PreflightCheckFailure (422).

    Each leg's symbol must be one ``catalog`` knows (for its multiplier and underlying).
    """
    if not isinstance(body, Mapping):
        raise InvalidRequest("Request body must be a JSON object")
    problems: list[dict[str, str]] = []
    order_type = body.get("order-type")
    if order_type == "Notional Market":
        raise PreflightCheckFailure(
            [
                reason(
                    "order_type_not_supported",
                    "Notional Market orders are not supported by the paper broker",
                )
            ]
        )
    if not _one_of(order_type, ORDER_TYPES):
        problems.append(reason("invalid_order_type", f"order-type {order_type!r} is not valid"))
    tif = body.get("time-in-force")
    if not _one_of(tif, TIME_IN_FORCES):
        problems.append(reason("invalid_time_in_force", f"time-in-force {tif!r} is not valid"))
    raw_legs = body.get("legs")
    legs: list[OrderLeg] = []
    if not isinstance(raw_legs, list) or not raw_legs:
        problems.append(reason("legs_required", "legs must be a non-empty list"))
    elif len(raw_legs) > MAX_LEGS:
        problems.append(reason("too_many_legs", f"an order has at most {MAX_LEGS} legs"))
    else:
        for index, raw in enumerate(raw_legs):
            leg = _parse_leg(index, raw, catalog, problems)
            if leg is not None:
                legs.append(leg)
        symbols = [leg.symbol for leg in legs]
        if len(set(symbols)) != len(symbols):
            problems.append(reason("duplicate_legs", "each leg must have a different symbol"))
    price = parse_decimal(body.get("price")) if body.get("price") is not None else None
    if body.get("price") is not None and (price is None or price < 0):
        problems.append(reason("invalid_price", "price must be a non-negative number"))
    if _one_of(order_type, PRICED_TYPES) and body.get("price") is None:
        problems.append(reason("price_required", f"{order_type} orders need a price"))
    stop = parse_decimal(body.get("stop-trigger")) if body.get("stop-trigger") is not None else None
    if _one_of(order_type, STOP_TYPES) and (stop is None or stop <= 0):
        problems.append(
            reason("stop_trigger_required", f"{order_type} orders need a positive stop-trigger")
        )
    effect = body.get("price-effect")
    if effect is not None and not _one_of(effect, (DEBIT, CREDIT)):
        problems.append(reason("invalid_price_effect", "price-effect must be Debit or Credit"))
    if tif == "GTD" and not isinstance(body.get("gtc-date"), str):
        problems.append(reason("gtc_date_required", "GTD orders need a gtc-date"))
    advanced = body.get("advanced-instructions")
    strict = (
        isinstance(advanced, Mapping) and advanced.get("strict-position-effect-validation") is True
    )
    external_identifier = _optional_str(body, "external-identifier", problems)
    source = _optional_str(body, "source", problems)
    gtc_date = _optional_str(body, "gtc-date", problems)
    if problems:
        raise InvalidRequest("Invalid order", errors=problems)
    order_type, tif = str(order_type), str(tif)
    if price is not None and effect is None:
        if len(legs) > 1:
            raise InvalidRequest(
                "Invalid order",
                errors=[reason("price_effect_required", "multi-leg orders need a price-effect")],
            )
        effect = DEBIT if legs[0].is_buy else CREDIT
    _preflight(order_type, tif, legs, price, effect)
    return PaperOrder(
        account_number=account_number,
        order_type=order_type,
        time_in_force=tif,
        legs=legs,
        received_at=now,
        updated_at=now,
        price=price if order_type in PRICED_TYPES else None,
        price_effect=effect if order_type in PRICED_TYPES else None,
        stop_trigger=stop if order_type in STOP_TYPES else None,
        gtc_date=gtc_date,
        external_identifier=external_identifier,
        source=source,
        strict_position_effect=strict,
    )


def _preflight(
    order_type: str, tif: str, legs: list[OrderLeg], price: Decimal | None, effect: object
) -> None:
    problems: list[dict[str, str]] = []
    if order_type == "Market" and tif in ("GTC", "GTD", "GTC Ext", "GTC Ext Overnight"):
        problems.append(
            reason("gtc_market_orders_not_supported", "GTC/GTD Market orders are not supported.")
        )
    if len(legs) == 1 and price:
        if legs[0].is_buy and effect == CREDIT:
            problems.append(reason("cant_buy_for_credit", "You cannot buy for a credit."))
        if not legs[0].is_buy and effect == DEBIT:
            problems.append(reason("cant_sell_for_debit", "You cannot sell for a debit."))
    if problems:
        raise PreflightCheckFailure(problems)


def merge_replacement(body: object, old: PaperOrder) -> dict[str, Any]:
    """A replace (PUT/PATCH) body completed from the old order: legs are kept when absent."""
    if not isinstance(body, Mapping):
        raise InvalidRequest("Request body must be a JSON object")
    merged: dict[str, Any] = {
        "order-type": old.order_type,
        "time-in-force": old.time_in_force,
        "legs": [
            {
                "instrument-type": leg.instrument_type,
                "symbol": leg.symbol,
                "action": leg.action,
                "quantity": str(leg.quantity),
            }
            for leg in old.legs
        ],
    }
    for key, value in (
        ("price", old.price),
        ("price-effect", old.price_effect),
        ("stop-trigger", old.stop_trigger),
        ("external-identifier", old.external_identifier),
        ("source", old.source),
        ("gtc-date", old.gtc_date),
    ):
        if value is not None:
            merged[key] = str(value)
    if body.get("order-type") is not None and body.get("order-type") != old.order_type:
        # A new type drops the old type's price fields unless the body restates them.
        for key in ("price", "price-effect", "stop-trigger"):
            merged.pop(key, None)
    merged.update(body)
    return merged
