"""The order lifecycle: preflight, accept, fill, cancel, replace, and complex orders.

Functions over a PaperBook; none awaits, so each call is atomic on the event loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

from gatekeeper.paper.errors import (
    CannotUpdateOrder,
    InvalidRequest,
    PaperError,
    PreflightCheckFailure,
    reason,
)
from gatekeeper.paper.fills import fill_order, is_marketable, order_cost
from gatekeeper.paper.model import (
    CANCELLED,
    CONTINGENT,
    FILLED,
    FUTURE,
    FUTURE_OPTION,
    LIVE,
    Account,
    ComplexOrder,
    ComplexType,
    PaperOrder,
    ReceivedOrder,
)
from gatekeeper.paper.orders import merge_replacement, parse_order

if TYPE_CHECKING:
    from gatekeeper.paper.book import PaperBook

COMPLEX_TYPES: dict[str, ComplexType] = {"OTO": "OTO", "OCO": "OCO", "OTOCO": "OTOCO"}


@dataclass
class OrderResult:
    order: PaperOrder
    cost: Decimal | None  # estimated cash moved, positive = debit
    buying_power_before: Decimal
    warnings: list[dict[str, str]] = field(default_factory=list)


@dataclass
class ComplexResult:
    complex_order: ComplexOrder
    cost: Decimal | None
    buying_power_before: Decimal
    warnings: list[dict[str, str]] = field(default_factory=list)


def working_cost(book: PaperBook, order: PaperOrder) -> Decimal:
    """What a working order may still cost (positive = debit); zero once terminal."""
    if not order.is_working:
        return Decimal(0)
    return order_cost(order, book.quotes) or Decimal(0)


def _preflight_account(book: PaperBook, account: Account, order: PaperOrder) -> None:
    problems: list[dict[str, str]] = []
    if order.order_type == "Market":
        for leg in order.legs:
            if leg.symbol not in book.quotes:
                problems.append(
                    reason("quote_unavailable", f"No quote is available for {leg.symbol}")
                )
    if order.strict_position_effect:
        for leg in order.legs:
            position = account.positions.get(leg.symbol)
            held = position.quantity if position else Decimal(0)
            if leg.is_closing and (held * (-1 if leg.is_buy else 1) < leg.quantity):
                problems.append(
                    reason(
                        "invalid_position_effect",
                        f"{leg.action} {leg.quantity} {leg.symbol}: not enough to close",
                    )
                )
    if account.margin_or_cash == "Cash":
        if any(leg.instrument_type in (FUTURE, FUTURE_OPTION) for leg in order.legs):
            problems.append(reason("futures_not_permitted", "Futures need a margin account"))
        if any(leg.action == "Sell to Open" for leg in order.legs):
            problems.append(
                reason("cash_account_short", "Cash accounts cannot open short positions")
            )
        cost = order_cost(order, book.quotes)
        funds = book.valuation(account.account_number).derivative_buying_power
        if cost is not None and cost > funds:
            problems.append(
                reason("insufficient_funds", f"Order costs {cost} but only {funds} is available")
            )
    if problems:
        raise PreflightCheckFailure(problems)


def _checked(
    book: PaperBook, account: Account, body: object, entry: ReceivedOrder | None
) -> PaperOrder:
    try:
        order = parse_order(body, account.account_number, book.now(), catalog=book.catalog)
        _preflight_account(book, account, order)
    except PaperError as error:
        if entry is not None:
            entry.outcome = error.code
        raise
    return order


def place_order(book: PaperBook, account: Account, body: object, *, dry_run: bool) -> OrderResult:
    """Validate, then (unless a dry run) accept the order and fill it if marketable."""
    entry = None if dry_run else book.record_received("order", account.account_number, body)
    order = _checked(book, account, body, entry)
    result = OrderResult(
        order,
        order_cost(order, book.quotes),
        book.valuation(account.account_number).derivative_buying_power,
    )
    if entry is not None:
        _accept(book, account, order)
        _route(book, account, order)
        entry.outcome = "accepted"
        entry.order_ids = [order.id] if order.id is not None else []
    return result


def _accept(book: PaperBook, account: Account, order: PaperOrder) -> None:
    order.id = next(book.order_ids)
    account.orders[order.id] = order


def _route(book: PaperBook, account: Account, order: PaperOrder) -> None:
    now = book.now()
    order.status = LIVE
    order.live_at = order.updated_at = now
    if not try_fill(book, account, order) and order.time_in_force == "IOC":
        _cancel(book, account, order)


def try_fill(book: PaperBook, account: Account, order: PaperOrder) -> bool:
    """Fill a live order if the quotes allow; then run its complex order's contingencies."""
    if order.status != LIVE or not is_marketable(order, book.quotes):
        return False
    fill_ids = [f"FILL-{next(book.fill_ids)}" for _ in order.legs]
    fill_order(account, order, book.quotes, book.now(), fill_ids)
    if order.complex_order_id is not None:
        complex_order = account.complex_orders[order.complex_order_id]
        if complex_order.trigger_order is order:
            for child in complex_order.orders:
                if child.status == CONTINGENT:
                    _route(book, account, child)
        elif complex_order.type in ("OCO", "OTOCO"):
            for sibling in complex_order.orders:
                if sibling is not order and sibling.is_working:
                    _cancel(book, account, sibling)
        _close_if_done(book, complex_order)
    return True


def reevaluate(book: PaperBook, symbol: str) -> None:
    """A quote moved: fill the working orders on that symbol that became marketable."""
    for account in book.accounts.values():
        for order in list(account.orders.values()):
            if order.status == LIVE and any(leg.symbol == symbol for leg in order.legs):
                try_fill(book, account, order)


def _cancel(book: PaperBook, account: Account, order: PaperOrder) -> None:
    now = book.now()
    order.status = CANCELLED
    order.cancelled_at = order.terminal_at = order.updated_at = now
    if order.complex_order_id is not None:
        complex_order = account.complex_orders[order.complex_order_id]
        if complex_order.trigger_order is order:
            for child in complex_order.orders:
                if child.is_working:
                    _cancel(book, account, child)
        _close_if_done(book, complex_order)


def _close_if_done(book: PaperBook, complex_order: ComplexOrder) -> None:
    members = [
        *complex_order.orders,
        *([complex_order.trigger_order] if complex_order.trigger_order else []),
    ]
    if complex_order.terminal_at is None and not any(member.is_working for member in members):
        complex_order.terminal_at = book.now()


def cancel_order(book: PaperBook, account: Account, order_id: int) -> PaperOrder:
    order = book.order(account, order_id)
    if not order.cancellable:
        raise CannotUpdateOrder(f"Order {order_id} is {order.status} and cannot be cancelled")
    _cancel(book, account, order)
    return order


def replace_order(book: PaperBook, account: Account, order_id: int, body: object) -> PaperOrder:
    """Cancel-replace a live order; legs are kept when the body has none."""
    entry = book.record_received("replace", account.account_number, body)
    try:
        old = book.order(account, order_id)
        if not old.editable:
            raise CannotUpdateOrder(f"Order {order_id} is {old.status} and cannot be replaced")
        merged = merge_replacement(body, old)
    except PaperError as error:
        entry.outcome = error.code
        raise
    new = _checked(book, account, merged, entry)
    _cancel(book, account, old)
    new.replaces_order_id = old.id
    new.complex_order_id = old.complex_order_id
    _accept(book, account, new)
    old.replacing_order_id = new.id
    if old.complex_order_id is not None:
        members = account.complex_orders[old.complex_order_id].orders
        members[:] = [new if member is old else member for member in members]
        account.complex_orders[old.complex_order_id].terminal_at = None
    _route(book, account, new)
    entry.outcome = "accepted"
    entry.order_ids = [new.id] if new.id is not None else []
    return new


def dry_run_replace(book: PaperBook, account: Account, order_id: int, body: object) -> OrderResult:
    """What replacing this order would do, without doing it."""
    old = book.order(account, order_id)
    if not old.editable:
        raise CannotUpdateOrder(f"Order {order_id} is {old.status} and cannot be replaced")
    new = _checked(book, account, merge_replacement(body, old), None)
    value = book.valuation(account.account_number)
    # The old order's reservation is released by the replace.
    funds = value.derivative_buying_power + max(Decimal(0), working_cost(book, old))
    return OrderResult(new, order_cost(new, book.quotes), funds)


def _parse_complex(
    book: PaperBook, account: Account, body: object
) -> tuple[ComplexType, PaperOrder | None, list[PaperOrder]]:
    if not isinstance(body, Mapping):
        raise InvalidRequest("Request body must be a JSON object")
    kind = COMPLEX_TYPES.get(str(body.get("type")))
    if kind is None:
        raise PreflightCheckFailure(
            [
                reason(
                    "complex_order_type_not_supported",
                    f"complex order type {body.get('type')!r} is not supported",
                )
            ]
        )
    raw_trigger = body.get("trigger-order")
    raw_orders = body.get("orders")
    if not isinstance(raw_orders, list) or not raw_orders:
        raise InvalidRequest(
            "Invalid order", errors=[reason("orders_required", "orders must be a non-empty list")]
        )
    if (kind == "OCO") != (raw_trigger is None):
        raise InvalidRequest(
            "Invalid order",
            errors=[
                reason(
                    "invalid_trigger_order",
                    f"{kind} orders {'need' if kind != 'OCO' else 'have no'} a trigger-order",
                )
            ],
        )
    if kind != "OTO" and len(raw_orders) != 2:
        raise InvalidRequest(
            "Invalid order",
            errors=[reason("invalid_orders", f"{kind} orders have exactly 2 orders")],
        )
    if len(raw_orders) > 3:
        raise InvalidRequest(
            "Invalid order", errors=[reason("invalid_orders", "at most 3 contingent orders")]
        )
    number, now, catalog = account.account_number, book.now(), book.catalog
    trigger = (
        None if raw_trigger is None else parse_order(raw_trigger, number, now, catalog=catalog)
    )
    orders = [parse_order(raw, number, now, catalog=catalog) for raw in raw_orders]
    for order in [*([trigger] if trigger else []), *orders]:
        _preflight_account(book, account, order)
    return kind, trigger, orders


def place_complex_order(
    book: PaperBook, account: Account, body: object, *, dry_run: bool
) -> ComplexResult:
    """OTO / OCO / OTOCO: the trigger works first; its fill releases the others."""
    entry = None if dry_run else book.record_received("complex-order", account.account_number, body)
    try:
        kind, trigger, orders = _parse_complex(book, account, body)
    except PaperError as error:
        if entry is not None:
            entry.outcome = error.code
        raise
    costs = [order_cost(order, book.quotes) for order in ([trigger] if trigger else orders)]
    cost = None if any(c is None for c in costs) else max(c for c in costs if c is not None)
    complex_order = ComplexOrder(
        id=0, account_number=account.account_number, type=kind, orders=orders, trigger_order=trigger
    )
    result = ComplexResult(
        complex_order, cost, book.valuation(account.account_number).derivative_buying_power
    )
    if entry is None:
        return result
    complex_order.id = next(book.order_ids)
    account.complex_orders[complex_order.id] = complex_order
    for order in [*([trigger] if trigger else []), *orders]:
        order.complex_order_id = complex_order.id
        _accept(book, account, order)
        if trigger is not None and order is not trigger:
            order.status = CONTINGENT
    for order in [trigger] if trigger else orders:
        if order.status not in (CANCELLED, FILLED):
            _route(book, account, order)
    entry.outcome = "accepted"
    entry.order_ids = [
        order.id for order in [*([trigger] if trigger else []), *orders] if order.id is not None
    ]
    return result


def cancel_complex_order(book: PaperBook, account: Account, complex_id: int) -> ComplexOrder:
    complex_order = book.complex_order(account, complex_id)
    for order in [
        *([complex_order.trigger_order] if complex_order.trigger_order else []),
        *complex_order.orders,
    ]:
        if order.is_working:
            _cancel(book, account, order)
    return complex_order
