"""Pricing orders against quotes and applying fills to cash and positions.

Pure functions over the model: no clock, no I/O. A buy fills at the ask, a sell at the bid;
a limit order is marketable when its limit is at least as good as the natural price. Futures
are margined (see ``valuation``): a fill moves cash only by the P&L it realizes, and what an
order on them ties up is margin on its notional value.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal

from gatekeeper.paper.model import (
    DEBIT,
    FUTURE,
    Account,
    Fill,
    OrderLeg,
    PaperOrder,
    Position,
    Quote,
)
from gatekeeper.paper.valuation import futures_margin


def leg_price(leg: OrderLeg, quotes: Mapping[str, Quote]) -> Decimal | None:
    """Where this leg would fill now: the ask for a buy, the bid for a sell."""
    quote = quotes.get(leg.symbol)
    if quote is None:
        return None
    price = quote.ask if leg.is_buy else quote.bid
    return price if price > 0 else None


def natural_price(order: PaperOrder, quotes: Mapping[str, Quote]) -> Decimal | None:
    """Net price per unit of ``size`` at the market (positive = debit); None if unpriced."""
    total = Decimal(0)
    size = order.size
    for leg in order.legs:
        price = leg_price(leg, quotes)
        if price is None:
            return None
        ratio = leg.quantity / size
        total += price * ratio if leg.is_buy else -price * ratio
    return total


def _stop_triggered(order: PaperOrder, quotes: Mapping[str, Quote]) -> bool:
    leg = order.legs[0]
    quote = quotes.get(leg.symbol)
    if quote is None or order.stop_trigger is None:
        return False
    if leg.is_buy:
        return quote.ask >= order.stop_trigger
    return quote.bid <= order.stop_trigger


def is_marketable(order: PaperOrder, quotes: Mapping[str, Quote]) -> bool:
    """Whether the order would fill against the current quotes."""
    natural = natural_price(order, quotes)
    if natural is None:
        return False
    if order.order_type in ("Stop", "Stop Limit") and not _stop_triggered(order, quotes):
        return False
    if order.price is None:  # Market, Stop
        return True
    limit = order.price if order.price_effect == DEBIT else -order.price
    return natural <= limit


def order_cost(order: PaperOrder, quotes: Mapping[str, Quote]) -> Decimal | None:
    """Estimated cash the order moves (positive = debit): its limit, else the market.

    With futures legs: the margin they tie up plus the other legs' premiums at the market.
    """
    if any(leg.instrument_type == FUTURE for leg in order.legs):
        return _margined_cost(order, quotes)
    multiplier = max(leg.multiplier for leg in order.legs)
    if order.price is not None:
        signed = order.price if order.price_effect == DEBIT else -order.price
        return signed * order.size * multiplier
    natural = natural_price(order, quotes)
    if natural is None and order.stop_trigger is not None and len(order.legs) == 1:
        leg = order.legs[0]
        natural = order.stop_trigger if leg.is_buy else -order.stop_trigger
    if natural is None:
        return None
    return natural * order.size * multiplier


def _margined_cost(order: PaperOrder, quotes: Mapping[str, Quote]) -> Decimal | None:
    total = Decimal(0)
    single = len(order.legs) == 1
    for leg in order.legs:
        # A one-leg order's own limit or stop prices it; a spread's legs go at the market.
        price = (order.price or order.stop_trigger) if single else None
        price = price or leg_price(leg, quotes)
        if price is None:
            return None
        if leg.instrument_type != FUTURE:
            total += (price if leg.is_buy else -price) * leg.quantity * leg.multiplier
        elif not leg.is_closing:
            total += futures_margin(price * leg.quantity * leg.multiplier)
    return total


def apply_position(
    account: Account, leg: OrderLeg, quantity: Decimal, price: Decimal, now: datetime
) -> None:
    """Move cash and the position for one execution (opens, adds, reduces, closes or flips)."""
    delta = quantity if leg.is_buy else -quantity
    margined = leg.instrument_type == FUTURE
    if not margined:
        account.cash -= delta * price * leg.multiplier
    position = account.positions.get(leg.symbol)
    if position is None:
        account.positions[leg.symbol] = Position(
            account_number=account.account_number,
            symbol=leg.symbol,
            instrument_type=leg.instrument_type,
            quantity=delta,
            average_open_price=price,
            multiplier=leg.multiplier,
            underlying_symbol=leg.terms.underlying_symbol,
            created_at=now,
            updated_at=now,
            close_price=price,
        )
        return
    old = position.quantity
    new = old + delta
    if old * delta > 0:  # adding to the same side
        position.average_open_price = (
            abs(old) * position.average_open_price + quantity * price
        ) / abs(new)
    else:
        closed = min(abs(delta), abs(old))
        direction = 1 if old > 0 else -1
        realized = (price - position.average_open_price) * closed * position.multiplier * direction
        position.realized_today += realized
        if margined:
            account.cash += realized
        if new * old < 0:  # flipped: the remainder opens at this price
            position.average_open_price = price
            position.created_at = now
    position.quantity = new
    position.updated_at = now
    if new == 0:
        del account.positions[leg.symbol]


def fill_order(
    account: Account,
    order: PaperOrder,
    quotes: Mapping[str, Quote],
    now: datetime,
    fill_ids: list[str],
) -> None:
    """Fill every leg completely at the current quotes (the caller checked marketability)."""
    for leg, fill_id in zip(order.legs, fill_ids, strict=True):
        price = leg_price(leg, quotes)
        if price is None:
            raise ValueError(f"fill_order: no price for {leg.symbol}")
        quantity = leg.remaining_quantity
        apply_position(account, leg, quantity, price, now)
        leg.fills.append(Fill(fill_id=fill_id, quantity=quantity, fill_price=price, filled_at=now))
        leg.remaining_quantity = Decimal(0)
    order.status = "Filled"
    order.terminal_at = now
    order.updated_at = now
