"""Opening vs closing: how much of each leg closes something held.

A leg closes only what is held minus what pending closes (working orders, in-flight orders,
earlier orders of the same request) already cover; the excess is opening. ``Buy``/``Sell``
(futures) close an opposite position first and open the rest. Opening orders never make a
later "close" valid: a resting buy may never fill.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from gatekeeper.core.order import Action, Leg, Order
from gatekeeper.core.snapshot import Position

_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Split:
    """One order cut into its opening and closing parts, leg by leg."""

    order: Order
    opening: tuple[tuple[Leg, Decimal], ...]
    closing: tuple[tuple[Leg, Decimal], ...]

    @property
    def is_verified_close(self) -> bool:
        """Every leg closes held quantity in full: exempt from the sizing rules."""
        return not self.opening

    @property
    def is_whole(self) -> bool:
        """Every leg opens in full, so the order's own (combo) price applies to the part."""
        return not self.closing


class Book:
    """Closable quantity per symbol: held longs/shorts minus what pending closes cover.

    The held quantities may be shared with other books (:meth:`over`, a prepared snapshot's):
    a book only ever writes its own changes, on top of them.
    """

    def __init__(self, positions: Iterable[Position] = ()) -> None:
        self._held_long: Mapping[str, Decimal] = {}
        self._held_short: Mapping[str, Decimal] = {}
        self._long: dict[str, Decimal] = {}
        self._short: dict[str, Decimal] = {}
        for position in positions:
            side = self._long if position.quantity > 0 else self._short
            side[position.symbol] = side.get(position.symbol, _ZERO) + abs(position.quantity)

    @classmethod
    def over(cls, long: Mapping[str, Decimal], short: Mapping[str, Decimal]) -> Book:
        """A book on held quantities summed beforehand (read, never written)."""
        book = cls()
        book._held_long, book._held_short = long, short
        return book

    def copy(self) -> Book:
        """An independent copy (for alternatives that cannot both fill, e.g. OCO siblings)."""
        clone = Book.over(self._held_long, self._held_short)
        clone._long = dict(self._long)
        clone._short = dict(self._short)
        return clone

    def _get(self, buy: bool, symbol: str) -> Decimal:
        """Closable quantity: by a buy (held shorts) or by a sell (held longs)."""
        own, held = (self._short, self._held_short) if buy else (self._long, self._held_long)
        found = own.get(symbol)
        return held.get(symbol, _ZERO) if found is None else found

    def add_prospective(self, split: Split) -> None:
        """Let later contingent orders close what ``split`` opens (OTO/OTOCO triggers)."""
        for leg, quantity in split.opening:
            # a buy opens a long: later sells may close it
            side = self._long if leg.is_buy else self._short
            side[leg.symbol] = self._get(not leg.is_buy, leg.symbol) + quantity

    def split(self, order: Order) -> Split:
        """Cut ``order`` into opening and closing parts, consuming closable quantity."""
        opening: list[tuple[Leg, Decimal]] = []
        closing: list[tuple[Leg, Decimal]] = []
        for leg in order.legs:
            quantity = leg.quantity
            if quantity is None or leg.action in (Action.BUY_TO_OPEN, Action.SELL_TO_OPEN):
                # notional legs have no quantity to match against holdings: opening
                opening.append((leg, quantity if quantity is not None else _ZERO))
                continue
            # a buy closes shorts; a sell closes longs
            side = self._short if leg.is_buy else self._long
            closable = self._get(leg.is_buy, leg.symbol)
            closed = min(quantity, closable)
            if closed > 0:
                side[leg.symbol] = closable - closed
                closing.append((leg, closed))
            if quantity > closed:
                opening.append((leg, quantity - closed))
        return Split(order, tuple(opening), tuple(closing))
