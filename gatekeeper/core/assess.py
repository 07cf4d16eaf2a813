"""Everything the rules need, computed once per evaluation: splits and values.

The working orders and in-flight orders are split first (they may already cover part of a
position), then the order's contained orders in request order. Complex orders follow their
semantics: an OTO/OTOCO trigger's opening part may be closed by its contingent orders, and
the two sides of an OCO are alternatives (each is checked against the same holdings).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from gatekeeper.core.effect import Book, Split
from gatekeeper.core.order import ComplexOrder, ComplexType, Order
from gatekeeper.core.snapshot import AccountSnapshot
from gatekeeper.core.valuation import Pricer, Unpriceable, Value

OrderInput = Order | ComplexOrder | Sequence[Order]


@dataclass(frozen=True, slots=True)
class Assessment:
    """The order's splits and the values the sizing rules compare (``None`` = unpriceable)."""

    splits: tuple[Split, ...]
    order: Value | None
    positions: Value | None
    working: Value | None
    missing: tuple[str, ...]

    @property
    def has_opening(self) -> bool:
        """Whether any contained order opens (or enlarges) a position."""
        return any(not split.is_verified_close for split in self.splits)

    @property
    def verified_close(self) -> bool:
        """Every contained order closes held quantity only."""
        return not self.has_opening


def contained_orders(orders: OrderInput) -> tuple[Order, ...]:
    """The orders a request may place, in order."""
    if isinstance(orders, Order):
        return (orders,)
    if isinstance(orders, ComplexOrder):
        return orders.contained
    return tuple(orders)


def _split_request(orders: OrderInput, book: Book) -> tuple[Split, ...]:
    if isinstance(orders, ComplexOrder):
        splits: list[Split] = []
        if orders.trigger_order is not None:
            trigger = book.split(orders.trigger_order)
            splits.append(trigger)
            book.add_prospective(trigger)
        if orders.type in (ComplexType.OCO, ComplexType.OTOCO):
            splits.extend(book.copy().split(order) for order in orders.orders)
        else:
            splits.extend(book.split(order) for order in orders.orders)
        return tuple(splits)
    return tuple(book.split(order) for order in contained_orders(orders))


def assess(
    orders: OrderInput,
    snapshot: AccountSnapshot,
    *,
    in_flight: Sequence[Order] = (),
    replaces_order_id: str | None = None,
    fees: Decimal = Decimal(0),
) -> Assessment:
    """Split and value the request against the snapshot. Never raises for valid inputs."""
    pricer = Pricer(snapshot)
    book = Book(snapshot.positions)
    missing: list[str] = []

    pending = [
        working.order
        for working in snapshot.working_orders
        if replaces_order_id is None or working.order_id != replaces_order_id
    ]
    pending.extend(in_flight)
    pending_splits = [book.split(order) for order in pending]
    splits = _split_request(orders, book)

    def total(parts: Sequence[Split]) -> Value | None:
        value = Value()
        ok = True
        for split in parts:
            try:
                value = value + pricer.opening_part(split)
            except Unpriceable as exc:
                missing.append(str(exc))
                ok = False
        return value if ok else None

    order_value = total(splits)
    if order_value is not None and fees and any(not s.is_verified_close for s in splits):
        order_value = Value(order_value.amount, order_value.cash - fees, order_value.by_underlying)
    working_value = total(pending_splits)
    positions_value: Value | None = Value()
    for position in snapshot.positions:
        try:
            if positions_value is not None:
                positions_value = positions_value + pricer.position(position)
            else:
                pricer.position(position)
        except Unpriceable as exc:
            missing.append(str(exc))
            positions_value = None
    return Assessment(
        splits=splits,
        order=order_value,
        positions=positions_value,
        working=working_value,
        missing=tuple(dict.fromkeys(missing)),
    )
