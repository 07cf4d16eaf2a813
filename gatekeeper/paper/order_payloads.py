"""Rendering orders, order responses, quotes and the received-orders log as TastyTrade JSON."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from gatekeeper.paper.model import (
    NONE_EFFECT,
    ComplexOrder,
    OrderLeg,
    PaperOrder,
    Quote,
    ReceivedOrder,
    SeenRequest,
)
from gatekeeper.paper.payloads import ZERO, dec, effect_of, epoch_ms, iso, qty
from gatekeeper.paper.trading import ComplexResult, OrderResult

DXLINK_URL = "wss://tasty-demo-ws.dxfeed.com/delayed"


def leg_payload(leg: OrderLeg) -> dict[str, Any]:
    return {
        "instrument-type": leg.instrument_type,
        "symbol": leg.symbol,
        "action": leg.action,
        "quantity": qty(leg.quantity),
        "remaining-quantity": qty(leg.remaining_quantity),
        "fills": [
            {
                "fill-id": fill.fill_id,
                "quantity": qty(fill.quantity),
                "fill-price": dec(fill.fill_price),
                "filled-at": iso(fill.filled_at),
                "destination-venue": "PAPER",
            }
            for fill in leg.fills
        ],
    }


def order_payload(order: PaperOrder) -> dict[str, Any]:
    data: dict[str, Any] = {
        "account-number": order.account_number,
        "time-in-force": order.time_in_force,
        "order-type": order.order_type,
        "size": qty(order.size),
        "underlying-symbol": order.underlying_symbol,
        "underlying-instrument-type": order.underlying_instrument_type,
        "status": order.status,
        "cancellable": order.cancellable,
        "editable": order.editable,
        "edited": order.edited,
        "received-at": iso(order.received_at),
        "updated-at": epoch_ms(order.updated_at),
        "legs": [leg_payload(leg) for leg in order.legs],
    }
    if order.id is not None:
        data = {"id": order.id, **data}
    optional: dict[str, Any] = {
        "price": dec(order.price) if order.price is not None else None,
        "price-effect": order.price_effect,
        "stop-trigger": dec(order.stop_trigger) if order.stop_trigger is not None else None,
        "gtc-date": order.gtc_date,
        "external-identifier": order.external_identifier,
        "source": order.source,
        "live-at": iso(order.live_at) if order.live_at else None,
        "terminal-at": iso(order.terminal_at) if order.terminal_at else None,
        "cancelled-at": iso(order.cancelled_at) if order.cancelled_at else None,
        "complex-order-id": order.complex_order_id,
        "replaces-order-id": order.replaces_order_id,
        "replacing-order-id": order.replacing_order_id,
        "reject-reason": order.reject_reason,
    }
    data.update({key: value for key, value in optional.items() if value is not None})
    return data


def _money(name: str, signed: Decimal) -> dict[str, str]:
    return {name: dec(abs(signed)), f"{name}-effect": effect_of(signed)}


def buying_power_effect(
    cost: Decimal | None, buying_power: Decimal, is_spread: bool
) -> dict[str, Any]:
    change = cost or ZERO
    requirement = max(change, ZERO)
    return {
        **_money("change-in-margin-requirement", requirement),
        **_money("change-in-buying-power", change),
        **_money("current-buying-power", -buying_power),
        **_money("new-buying-power", -(buying_power - change)),
        **_money("isolated-order-margin-requirement", requirement),
        "is-spread": is_spread,
        "impact": dec(abs(change)),
        "effect": effect_of(change),
    }


def fee_calculation() -> dict[str, Any]:
    """The paper broker charges no fees; the block is complete so clients can parse it."""
    names = (
        "regulatory-fees",
        "clearing-fees",
        "commission",
        "proprietary-index-option-fees",
        "total-fees",
    )
    data: dict[str, Any] = {}
    for name in names:
        data.update(_money(name, ZERO))
    data.update({"rebates": "0.0", "rebates-effect": NONE_EFFECT, "per-quantity": False})
    return data


def placed_order_response(result: OrderResult) -> dict[str, Any]:
    return {
        "order": order_payload(result.order),
        "buying-power-effect": buying_power_effect(
            result.cost, result.buying_power_before, len(result.order.legs) > 1
        ),
        "fee-calculation": fee_calculation(),
        "warnings": result.warnings,
    }


def complex_order_payload(complex_order: ComplexOrder) -> dict[str, Any]:
    data: dict[str, Any] = {
        "account-number": complex_order.account_number,
        "type": complex_order.type,
        "orders": [order_payload(order) for order in complex_order.orders],
    }
    if complex_order.id:
        data = {"id": complex_order.id, **data}
    if complex_order.trigger_order is not None:
        data["trigger-order"] = order_payload(complex_order.trigger_order)
    if complex_order.terminal_at is not None:
        data["terminal-at"] = iso(complex_order.terminal_at)
    return data


def complex_order_response(result: ComplexResult) -> dict[str, Any]:
    return {
        "complex-order": complex_order_payload(result.complex_order),
        "buying-power-effect": buying_power_effect(result.cost, result.buying_power_before, True),
        "fee-calculation": fee_calculation(),
        "warnings": result.warnings,
    }


def quote_payload(quote: Quote, now: datetime) -> dict[str, Any]:
    """One ``/market-data/by-type`` item; ``updated-at`` is ``now`` unless pinned."""
    updated = quote.pinned_updated_at or now
    today = updated.date().isoformat()
    close = quote.close if quote.close is not None else quote.mid
    return {
        "symbol": quote.symbol,
        "instrument-type": quote.instrument_type,
        "updated-at": iso(updated),
        "bid": dec(quote.bid),
        "ask": dec(quote.ask),
        "mid": dec(quote.mid),
        "mark": dec(quote.mark),
        "last": dec(quote.last if quote.last is not None else quote.mark),
        "close": dec(close),
        "prev-close": dec(close),
        "bid-size": "100.0",
        "ask-size": "100.0",
        "volume": "0.0",
        "close-price-type": "Regular",
        "summary-date": today,
        "prev-close-date": today,
        "prev-close-price-type": "Final",
        "halt-start-time": -1,
        "halt-end-time": -1,
    }


def quote_token_payload(token: str, now: datetime) -> dict[str, Any]:
    return {
        "token": token,
        "dxlink-url": DXLINK_URL,
        "level": "demo",
        "expires-at": iso(now + timedelta(hours=24)),
    }


def received_payload(entry: ReceivedOrder) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "kind": entry.kind,
        "account-number": entry.account_number,
        "received-at": iso(entry.received_at),
        "outcome": entry.outcome,
        "order-ids": entry.order_ids,
        "body": entry.body,
    }


def seen_payload(entry: SeenRequest) -> dict[str, Any]:
    return {
        "method": entry.method,
        "raw-path": entry.raw_path,
        "received-at": iso(entry.received_at),
    }
