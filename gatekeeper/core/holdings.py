"""The account's holdings as the risk model sees them, and what orders would change.

Positions are held; working and in-flight orders count as filled; complex orders are
alternatives: an OCO's members cannot both fill, an OTO/OTOCO's contingent orders fill only
after their trigger (and an OTOCO's two exits are an OCO). Each alternative is a *world*: the
orders that fill together.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from functools import lru_cache

from gatekeeper.core.instruments import Instrument, plain
from gatekeeper.core.order import ComplexOrder, ComplexType, Order, OrderType, PriceEffect
from gatekeeper.core.pricing import Prices
from gatekeeper.core.risk import Holding
from gatekeeper.core.snapshot import AccountSnapshot, Position, WorkingOrder
from gatekeeper.core.symbols import InstrumentType, parse_option_symbol

World = tuple[Order, ...]
OrderInput = Order | ComplexOrder | Sequence[Order]
_ZERO = Decimal(0)


def contained_orders(orders: OrderInput) -> tuple[Order, ...]:
    """The orders a request may place, in order (trigger first)."""
    if isinstance(orders, Order):
        return (orders,)
    if isinstance(orders, ComplexOrder):
        return orders.contained
    return tuple(orders)


def request_worlds(orders: OrderInput) -> tuple[World, ...]:
    """The alternatives a request allows: the trigger alone (its exits may never fill), then
    the trigger with each contingent order; an OCO's members one at a time."""
    if not isinstance(orders, ComplexOrder):
        return (contained_orders(orders),)
    if orders.type is ComplexType.PAIRS:
        return (orders.orders,)
    if orders.trigger_order is None:
        return tuple((member,) for member in orders.orders)
    trigger = orders.trigger_order
    return ((trigger,), *((trigger, member) for member in orders.orders))


def pending_worlds(
    working: Sequence[WorkingOrder], in_flight: Sequence[Order]
) -> list[tuple[World, ...]]:
    """Working and in-flight orders as alternatives: a plain order is one world of its own;
    the members of one complex order are grouped as :func:`request_worlds` would."""
    groups: dict[str, list[WorkingOrder]] = {}
    found: list[tuple[World, ...]] = []
    for item in working:
        if item.complex_order_id is None:
            found.append(((item.order,),))
        else:
            groups.setdefault(item.complex_order_id, []).append(item)
    for members in groups.values():
        live = tuple(m.order for m in members if not m.contingent)
        waiting = [m.order for m in members if m.contingent]
        if waiting:
            found.append((live, *((*live, w) for w in waiting)))
        else:
            found.append(tuple((order,) for order in live))
    found.extend(((order,),) for order in in_flight)
    return found


@lru_cache(maxsize=16384, typed=True)  # a frozen value: one per held option will do
def _held_option(symbol: str, group: str, multiplier: Decimal, text: str) -> Instrument | None:
    """A held equity option's instrument from the position's underlying and multiplier
    (``text``: the multiplier's digits, part of the cache key)."""
    del text
    option = parse_option_symbol(InstrumentType.EQUITY_OPTION, symbol)
    if option is None:
        return None
    return Instrument(
        symbol,
        InstrumentType.EQUITY_OPTION,
        group,
        multiplier,
        group,
        InstrumentType.EQUITY,
        option,
    )


class Valuer:
    """Instruments, holdings and debits for one snapshot (prices problems go to ``prices``)."""

    def __init__(
        self,
        snapshot: AccountSnapshot,
        prices: Prices,
        *,
        held: Mapping[str, Position] | None = None,
    ) -> None:
        self.snapshot = snapshot
        self.prices = prices
        self._held = {p.symbol: p for p in snapshot.positions} if held is None else held

    def instrument(self, instrument_type: InstrumentType, symbol: str) -> Instrument | None:
        """What the broker said about ``symbol``; stock and crypto need no look-up; a held
        equity option carries its underlying and multiplier. ``None`` (recorded) otherwise."""
        known = self.snapshot.instruments.get(symbol) or plain(symbol, instrument_type)
        if known is not None:
            return known
        held = self._held.get(symbol)
        if held is not None and instrument_type is InstrumentType.EQUITY_OPTION:
            multiplier = held.multiplier  # its text too: 100 and 100.0 are different values
            found = _held_option(symbol, held.underlying_symbol, multiplier, str(multiplier))
            if found is not None:
                return found
        self.prices.missing(symbol, "instrument unknown (no group or contract multiplier)")
        return None

    def holding(
        self, instrument_type: InstrumentType, symbol: str, quantity: Decimal
    ) -> Holding | str:
        """A holding at its mark, or the symbol that could not be valued."""
        instrument = self.instrument(instrument_type, symbol)
        if instrument is None:
            return symbol
        mark = self.prices.mark(symbol)
        if mark is None:
            return instrument.group
        return Holding(instrument, quantity, mark)

    def positions(self) -> list[Holding | str]:
        """Every held position."""
        return [
            self.holding(p.instrument_type, p.symbol, p.quantity) for p in self.snapshot.positions
        ]

    def filled(self, orders: Iterable[Order]) -> list[Holding | str]:
        """What ``orders`` add once filled (buys positive, sells negative)."""
        found: list[Holding | str] = []
        for order in orders:
            for leg in order.legs:
                quantity = leg.quantity
                if quantity is None:  # Notional Market: the value buys at the mark
                    mark = self.prices.mark(leg.symbol)
                    if mark is None or order.value is None:
                        found.append(leg.symbol)
                        continue
                    quantity = order.value / mark
                sign = 1 if leg.is_buy else -1
                found.append(self.holding(leg.instrument_type, leg.symbol, sign * quantity))
        return found

    def debit(self, order: Order) -> Decimal | None:
        """What the order pays at its price (limit, else the ask, a buy stop at least its
        trigger); credits count 0 and futures are margined, not paid. ``None``: unpriceable."""
        legs = [leg for leg in order.legs if leg.instrument_type is not InstrumentType.FUTURE]
        if not legs:
            return _ZERO
        if order.order_type is OrderType.NOTIONAL_MARKET:
            paid = order.value_effect is PriceEffect.DEBIT and order.value is not None
            return order.value if paid and order.value is not None else _ZERO
        multipliers = []
        for leg in legs:
            instrument = self.instrument(leg.instrument_type, leg.symbol)
            if instrument is None:
                return None
            multipliers.append((leg, instrument.multiplier))
        if order.has_limit_price and order.price is not None:
            if order.price_effect is not PriceEffect.DEBIT:
                return _ZERO
            return order.price * order.units * max(m for _, m in multipliers)
        total = _ZERO
        for leg, multiplier in multipliers:
            price = self.prices.side(leg.symbol, buy=leg.is_buy)
            if price is None:
                return None
            if leg.is_buy and order.stop_trigger is not None:
                price = max(price, order.stop_trigger)  # a buy stop fills at or above it
            total += (1 if leg.is_buy else -1) * price * (leg.quantity or _ZERO) * multiplier
        return max(total, _ZERO)

    def debits(self, orders: Iterable[Order]) -> Decimal | None:
        """The sum of :meth:`debit` (``None`` if any is unpriceable)."""
        total = _ZERO
        for order in orders:
            debit = self.debit(order)
            if debit is None:
                return None
            total += debit
        return total
