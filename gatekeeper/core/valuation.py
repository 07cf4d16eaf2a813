"""Prices and values: what an order, a working order or a position is worth for the rules.

No price is ever made up: when one is needed and cannot be found, :class:`Unpriceable` is
raised and the caller reports ``price_unavailable``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from gatekeeper.core.effect import Split
from gatekeeper.core.order import Leg, Order, OrderType, PriceEffect
from gatekeeper.core.snapshot import AccountSnapshot, Position, Quote
from gatekeeper.core.symbols import InstrumentType, OptionInfo, OptionKind

_ZERO = Decimal(0)
_TWO = Decimal(2)
_DEFAULT_MULTIPLIERS = {
    InstrumentType.EQUITY: Decimal(1),
    InstrumentType.CRYPTOCURRENCY: Decimal(1),
    InstrumentType.EQUITY_OPTION: Decimal(100),
}


class Unpriceable(Exception):
    """A price or multiplier needed for a value is not known."""

    def __init__(self, symbol: str, what: str = "no usable price") -> None:
        super().__init__(f"{what} for {symbol}")
        self.symbol = symbol


@dataclass(frozen=True, slots=True)
class Value:
    """A value for the rules: gross ``amount`` (single trade, exposure), ``cash`` impact
    (negative = cash leaves the account) and the amount per underlying (concentration)."""

    amount: Decimal = _ZERO
    cash: Decimal = _ZERO
    by_underlying: Mapping[str, Decimal] = field(default_factory=dict)

    def __add__(self, other: Value) -> Value:
        merged = dict(self.by_underlying)
        for underlying, amount in other.by_underlying.items():
            merged[underlying] = merged.get(underlying, _ZERO) + amount
        return Value(self.amount + other.amount, self.cash + other.cash, merged)


def _positive(price: Decimal | None) -> Decimal | None:
    return price if price is not None and price > 0 else None


class Pricer:
    """Looks up prices and multipliers in one snapshot."""

    def __init__(self, snapshot: AccountSnapshot) -> None:
        self._quotes: Mapping[str, Quote] = snapshot.quotes
        self._multipliers: dict[str, Decimal] = dict(snapshot.multipliers)
        for position in snapshot.positions:
            self._multipliers.setdefault(position.symbol, position.multiplier)

    def multiplier(self, instrument_type: InstrumentType, symbol: str) -> Decimal:
        """Contract multiplier: known per symbol, else the type's default (none for futures)."""
        known = self._multipliers.get(symbol)
        if known is not None and known > 0:
            return known
        default = _DEFAULT_MULTIPLIERS.get(instrument_type)
        if default is None:
            raise Unpriceable(symbol, "no contract multiplier known")
        return default

    def mid(self, symbol: str) -> Decimal | None:
        """The quote's mid (else the mean of bid and ask, else its mark)."""
        quote = self._quotes.get(symbol)
        if quote is None:
            return None
        bid, ask = _positive(quote.bid), _positive(quote.ask)
        if _positive(quote.mid) is not None:
            return quote.mid
        if bid is not None and ask is not None:
            return (bid + ask) / _TWO
        return _positive(quote.mark)

    def side(self, symbol: str, *, buy: bool) -> Decimal:
        """The price an order trades at: the ask for buys, the bid for sells."""
        quote = self._quotes.get(symbol)
        price = None if quote is None else _positive(quote.ask if buy else quote.bid)
        if price is None:
            raise Unpriceable(symbol, f"no {'ask' if buy else 'bid'}")
        return price

    def bid_or_zero(self, symbol: str) -> Decimal:
        """The bid when quoted, else 0 (only ever used as a lower bound)."""
        quote = self._quotes.get(symbol)
        return (None if quote is None else _positive(quote.bid)) or _ZERO

    def underlying_price(self, option: OptionInfo) -> Decimal:
        """Price of an option's underlying (for short calls valued at notional)."""
        price = self.mid(option.underlying)
        if price is None:
            raise Unpriceable(option.underlying)
        return price

    def short_option_notional(
        self, option: OptionInfo, quantity: Decimal, mult: Decimal
    ) -> Decimal:
        """An uncovered short option's exposure: its loss is not bounded by the premium."""
        if option.kind is OptionKind.PUT:
            return option.strike * mult * quantity
        return self.underlying_price(option) * mult * quantity

    def position(self, position: Position) -> Value:
        """A held position at mid/mark (fallback: its own mark, then close price)."""
        quantity = abs(position.quantity)
        mult = position.multiplier
        if mult <= 0:
            raise Unpriceable(position.symbol, "no usable multiplier")
        option = position.option
        if option is not None and position.quantity < 0:
            amount = self.short_option_notional(option, quantity, mult)
        else:
            unit = (
                self.mid(position.symbol)
                or _positive(position.mark)
                or _positive(position.close_price)
            )
            if unit is None:
                raise Unpriceable(position.symbol)
            amount = quantity * unit * mult
        return Value(amount, _ZERO, {position.underlying_symbol: amount})

    def opening_part(self, split: Split) -> Value:
        """The value of an order's opening part (zero for a verified close)."""
        order = split.order
        if not split.opening:
            return Value()
        if order.order_type is OrderType.NOTIONAL_MARKET and order.value is not None:
            leg = order.legs[0]
            cash = -order.value if order.value_effect is PriceEffect.DEBIT else _ZERO
            return Value(order.value, cash, {leg.underlying: order.value})
        if split.is_whole and len(order.legs) > 1:
            spread = self._defined_risk(order)
            if spread is not None:
                return spread
        total = Value()
        for leg, quantity in split.opening:
            total = total + self._leg(order, leg, quantity)
        return total

    def _leg(self, order: Order, leg: Leg, quantity: Decimal) -> Value:
        mult = self.multiplier(leg.instrument_type, leg.symbol)
        option = leg.option
        if option is not None and not leg.is_buy:
            amount = self.short_option_notional(option, quantity, mult)
            return Value(amount, _ZERO, {leg.underlying: amount})
        if len(order.legs) == 1 and order.has_limit_price and order.price is not None:
            unit = order.price
            if not leg.is_buy:
                # a sell limit is a floor: a low limit fills at the market, so never value a
                # short sale below the bid
                unit = max(unit, self.bid_or_zero(leg.symbol))
        else:
            unit = self.side(leg.symbol, buy=leg.is_buy)
            if leg.is_buy and order.stop_trigger is not None:
                # a buy stop fills at or above its trigger
                unit = max(unit, order.stop_trigger)
        amount = quantity * unit * mult
        # sale proceeds are never counted as cash: a short sale's cash is not free
        cash = -amount if leg.is_buy else _ZERO
        return Value(amount, cash, {leg.underlying: amount})

    def _defined_risk(self, order: Order) -> Value | None:
        """Max loss of an all-option order whose every short leg is covered, else None."""
        options = [(leg, leg.option) for leg in order.legs]
        infos = [info for _, info in options if info is not None]
        if len(infos) != len(options):
            return None
        if len({(i.underlying, i.expiry) for i in infos}) != 1:
            return None
        mults = {self.multiplier(leg.instrument_type, leg.symbol) for leg in order.legs}
        if len(mults) != 1:
            return None
        (mult,) = mults
        longs = [(leg, info) for leg, info in options if info is not None and leg.is_buy]
        for leg, info in options:
            if leg.is_buy or info is None:
                continue
            cover = next(
                (
                    pair
                    for pair in longs
                    if pair[1].kind is info.kind and pair[0].quantity == leg.quantity
                ),
                None,
            )
            if cover is None:
                return None
            longs.remove(cover)
        if order.has_limit_price and order.price is not None:
            sign = 1 if order.price_effect is PriceEffect.DEBIT else -1
            net_debit = sign * order.price * order.units * mult
        else:
            net_debit = sum(
                (
                    (1 if leg.is_buy else -1)
                    * self.side(leg.symbol, buy=leg.is_buy)
                    * (leg.quantity or _ZERO)
                    * mult
                    for leg in order.legs
                ),
                _ZERO,
            )
        worst = min(self._payoff(options, price, mult) for price in _test_prices(infos))
        max_loss = max(_ZERO, net_debit - worst)
        return Value(max_loss, -max_loss, {infos[0].underlying: max_loss})

    @staticmethod
    def _payoff(
        options: list[tuple[Leg, OptionInfo | None]], price: Decimal, mult: Decimal
    ) -> Decimal:
        total = _ZERO
        for leg, info in options:
            assert info is not None  # noqa: S101 - checked by the caller
            intrinsic = price - info.strike if info.kind is OptionKind.CALL else info.strike - price
            sign = 1 if leg.is_buy else -1
            total += sign * max(_ZERO, intrinsic) * (leg.quantity or _ZERO) * mult
        return total


def _test_prices(infos: list[OptionInfo]) -> list[Decimal]:
    """Expiry prices where a payoff built from these strikes can reach its minimum.

    The payoff is piecewise linear with kinks at the strikes and flat beyond the highest
    (calls are paired), so 0 and every strike suffice.
    """
    return [_ZERO, *sorted({info.strike for info in infos})]
