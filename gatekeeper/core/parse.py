"""From request bodies to orders: TastyTrade's form, the seed's simple form, complex orders,
replace bodies and the broker's live-order payloads.

Every failure is an :class:`~gatekeeper.core.errors.OrderParseError` whose message names the
field and the problem, never the offending value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from gatekeeper.core.errors import InvalidOrder
from gatekeeper.core.jsonstrict import DEFAULT_MAX_BYTES, loads_strict
from gatekeeper.core.order import ComplexOrder, Leg, Order, OrderPatch
from gatekeeper.core.symbols import guess_instrument_type

_M = TypeVar("_M", bound=BaseModel)

_SIMPLE_ORDER_TYPES = {
    "limit": "Limit",
    "market": "Market",
    "marketable-limit": "Marketable Limit",
    "stop": "Stop",
    "stop-limit": "Stop Limit",
    "notional-market": "Notional Market",
}
_SIMPLE_ACTIONS = {
    "buy-to-open": "Buy to Open",
    "sell-to-open": "Sell to Open",
    "buy-to-close": "Buy to Close",
    "sell-to-close": "Sell to Close",
    "buy": "Buy",
    "sell": "Sell",
}
_SIMPLE_TIFS = {
    "day": "Day",
    "gtc": "GTC",
    "gtd": "GTD",
    "ext": "Ext",
    "ext-overnight": "Ext Overnight",
    "gtc-ext": "GTC Ext",
    "gtc-ext-overnight": "GTC Ext Overnight",
    "ioc": "IOC",
}


def _validate(model: type[_M], data: object, *, by_name: bool = False) -> _M:
    """Validate ``data`` by its dasherized keys only, mapping errors to InvalidOrder."""
    if not isinstance(data, Mapping):
        raise InvalidOrder("invalid_order: the order must be a JSON object")
    try:
        return model.model_validate(dict(data), by_alias=not by_name, by_name=by_name)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        first = errors[0]
        where = ".".join(str(part) for part in first["loc"]) or "order"
        problem = str(first["msg"]).removeprefix("Value error, ")
        more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
        raise InvalidOrder(f"invalid_order: {where}: {problem}{more}") from None
    except (TypeError, ArithmeticError) as exc:
        raise InvalidOrder(f"invalid_order: {type(exc).__name__}") from None


def _simple_token(value: object, table: Mapping[str, str], field: str) -> str:
    if not isinstance(value, str):
        raise InvalidOrder(f"invalid_order: {field}: must be a string")
    key = value.strip().lower().replace("_", "-").replace(" ", "-")
    if key not in table:
        raise InvalidOrder(f"invalid_order: {field}: unknown value")
    return table[key]


def simple_to_tastytrade(data: Mapping[str, Any]) -> dict[str, Any]:
    """Rewrite the seed's simple form (``symbol``, ``quantity``, ``order_type``, ``action``,
    ``price``, ``time_in_force``...) as a TastyTrade order dict with one leg."""
    symbol = data.get("symbol")
    if not isinstance(symbol, str):
        raise InvalidOrder("invalid_order: symbol: must be a string")
    action = _simple_token(data.get("action"), _SIMPLE_ACTIONS, "action")
    order_type = _simple_token(data.get("order_type"), _SIMPLE_ORDER_TYPES, "order_type")
    tif = _simple_token(data.get("time_in_force", "day"), _SIMPLE_TIFS, "time_in_force")
    instrument = data.get("instrument_type")
    if instrument is None:
        instrument = guess_instrument_type(symbol).value
    effect = "Debit" if action.startswith("Buy") else "Credit"
    result: dict[str, Any] = {
        "order-type": order_type,
        "time-in-force": tif,
        "legs": [
            {
                "instrument-type": instrument,
                "symbol": symbol,
                "quantity": data.get("quantity"),
                "action": action,
            }
        ],
    }
    for simple, dashed in (
        ("price", "price"),
        ("stop_trigger", "stop-trigger"),
        ("stop_price", "stop-trigger"),
        ("value", "value"),
        ("gtc_date", "gtc-date"),
    ):
        if data.get(simple) is not None:
            result[dashed] = data[simple]
    if "price" in result:
        result["price-effect"] = data.get("price_effect", effect)
    if "value" in result:
        result["value-effect"] = data.get("value_effect", effect)
    if order_type == "Notional Market":
        result["legs"][0].pop("quantity")
    return result


def parse_order(data: Mapping[str, Any], *, allow_simple: bool = False) -> Order:
    """Parse one order from a decoded JSON object.

    With ``allow_simple`` (the admin ``validate_trade`` route), a body with ``symbol`` and no
    ``legs`` is read in the seed's simple form; the proxy path accepts TastyTrade's form only.
    """
    if allow_simple and "legs" not in data and "symbol" in data:
        data = simple_to_tastytrade(data)
    return _validate(Order, data)


def parse_order_bytes(
    raw: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES, allow_simple: bool = False
) -> Order:
    """Strict-JSON-decode ``raw`` and parse it with :func:`parse_order`."""
    return parse_order(loads_strict(raw, max_bytes=max_bytes), allow_simple=allow_simple)


def parse_complex_order(data: Mapping[str, Any]) -> ComplexOrder:
    """Parse an OTO / OCO / OTOCO / PAIRS body; every contained order is a full order."""
    return _validate(ComplexOrder, data)


def parse_complex_order_bytes(raw: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> ComplexOrder:
    """Strict-JSON-decode ``raw`` and parse it with :func:`parse_complex_order`."""
    return parse_complex_order(loads_strict(raw, max_bytes=max_bytes))


def parse_replace(data: Mapping[str, Any]) -> OrderPatch:
    """Parse a replace body (``PUT``/``PATCH /orders/{id}``); legs may be absent."""
    return _validate(OrderPatch, data)


def parse_replace_bytes(raw: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES) -> OrderPatch:
    """Strict-JSON-decode ``raw`` and parse it with :func:`parse_replace`."""
    return parse_replace(loads_strict(raw, max_bytes=max_bytes))


def apply_replace(original: Order, patch: OrderPatch) -> Order:
    """The order that replacing ``original`` with ``patch`` would leave working.

    Fields the patch carries win; the rest (legs, usually) come from the original. The result
    is validated as a whole order, so a patch that leaves it incomplete is an InvalidOrder.

    Whether the broker honours legs in a replace body is not documented, so legs given in the
    patch must name the original's instruments and actions, and each leg keeps the larger of
    the two quantities: whichever the broker uses, the checked order is never the smaller.
    """
    merged: dict[str, Any] = original.model_dump()
    for name in patch.model_fields_set - {"legs"}:
        merged[name] = getattr(patch, name)
    if patch.legs is not None:
        merged["legs"] = _merge_legs(original, patch.legs)
    new_type = patch.order_type if "order_type" in patch.model_fields_set else None
    if (
        new_type is not None
        and "price" not in patch.model_fields_set
        and new_type.value not in ("Limit", "Stop Limit")
    ):
        # a new type with no price must not silently inherit the old limit
        merged["price"] = None
        merged["price_effect"] = None
    return _validate(Order, merged, by_name=True)


def _merge_legs(original: Order, legs: tuple[Leg, ...]) -> list[dict[str, Any]]:
    def key(leg: Leg) -> tuple[str, str, str]:
        return (leg.instrument_type.value, leg.symbol, leg.action.value)

    before = {key(leg): leg for leg in original.legs}
    if sorted(before) != sorted(key(leg) for leg in legs):
        raise InvalidOrder("invalid_order: legs: a replace cannot change instruments or actions")
    merged = []
    for leg in legs:
        old = before[key(leg)].quantity
        quantity = leg.quantity if old is None or leg.quantity is None else max(old, leg.quantity)
        merged.append({**leg.model_dump(), "quantity": quantity})
    return merged


def parse_live_order(item: Mapping[str, Any]) -> Order:
    """Parse an order from ``/orders/live`` (``data.items``), legs at their remaining size.

    Filled parts are already in positions; what can still fill is ``remaining-quantity``.
    """
    legs = item.get("legs")
    if isinstance(legs, list):
        fixed = []
        for leg in legs:
            if isinstance(leg, Mapping) and leg.get("remaining-quantity") is not None:
                leg = {**leg, "quantity": leg["remaining-quantity"]}
            fixed.append(leg)
        item = {**item, "legs": fixed}
    return parse_order(item)
