"""A short, JSON-able summary of an order: what a person reading a decision wants first.

The audit row keeps the whole decision; an operator scanning today's decisions (the CLI, the
console, the ``RISK_DECISION`` log line) wants symbol, side, quantity and price. Decimals are
kept as strings, exactly as the bot sent them, so nothing is rounded on the way to a log.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from gatekeeper.core.order import ComplexOrder, Leg, Order, OrderPatch

__all__ = ["order_summary", "summary_text"]

Summarised = Order | ComplexOrder | OrderPatch


def _number(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _legs(legs: Iterable[Leg]) -> list[dict[str, Any]]:
    return [
        {"symbol": leg.symbol, "action": leg.action.value, "quantity": _number(leg.quantity)}
        for leg in legs
    ]


def _single(order: Order | OrderPatch) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "legs": _legs(order.legs or ()),
        "price": _number(order.price),
        "price_effect": None if order.price_effect is None else order.price_effect.value,
        "order_type": None if order.order_type is None else order.order_type.value,
        "time_in_force": None if order.time_in_force is None else order.time_in_force.value,
    }
    # Only when set: most orders have neither, and the summary stays small.
    if order.stop_trigger is not None:
        summary["stop_trigger"] = _number(order.stop_trigger)
    if order.value is not None:
        summary["value"] = _number(order.value)
        summary["value_effect"] = None if order.value_effect is None else order.value_effect.value
    return summary


def order_summary(orders: Summarised) -> dict[str, Any]:
    """``{legs: [{symbol, action, quantity}], price, price_effect, order_type,
    time_in_force}`` (plus ``stop_trigger``, ``value`` and ``value_effect`` when set).

    A replace (OrderPatch) gives only what it changes: absent fields are ``None``, absent
    legs ``[]``. A complex order lists every leg of every order it may place (the trigger
    first), takes price and type from its first order, and adds ``complex_type`` and
    ``orders`` (one summary each).
    """
    if isinstance(orders, ComplexOrder):
        parts = [_single(order) for order in orders.contained]
        head = parts[0]
        return {
            **head,
            "legs": [leg for part in parts for leg in part["legs"]],
            "complex_type": orders.type.value,
            "orders": parts,
        }
    return _single(orders)


def summary_text(summary: Mapping[str, Any]) -> str:
    """One line for a table: ``Buy to Open 100 AAPL @ 150.00 Debit (Limit, Day)``; ``""`` for
    an empty summary (an order that could not be read)."""
    legs = summary.get("legs") or []
    parts = [
        " ".join(str(p) for p in (leg.get("action"), leg.get("quantity"), leg.get("symbol")) if p)
        for leg in legs
        if isinstance(leg, Mapping)
    ]
    text = ", ".join(part for part in parts if part)
    if summary.get("price") is not None:
        effect = summary.get("price_effect")
        text += f" @ {summary['price']}" + (f" {effect}" if effect else "")
    elif summary.get("value") is not None:
        text += f" for {summary['value']}"
    kinds = [summary.get(key) for key in ("complex_type", "order_type", "time_in_force")]
    named = [str(kind) for kind in kinds if kind]
    if named:
        text += f" ({', '.join(named)})"
    return text.strip()
