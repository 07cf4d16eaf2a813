"""Checks on the order itself rather than on the account's risk: price collars against the
quote (a fat-fingered limit), the maximum quantity of one leg, and the broker's own
restrictions on the account (closing only, frozen, closed, margin call).

:func:`order_prices` reads what the collars compare from the request and the quotes (pure);
the ``check_*`` functions are rules of :data:`gatekeeper.core.rules.RULES` and
:data:`~gatekeeper.core.rules.ACCOUNT_RULES`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from gatekeeper.core.codes import Code
from gatekeeper.core.decision import HUNDRED, Violation
from gatekeeper.core.order import Order, PriceEffect
from gatekeeper.core.pricing import Prices
from gatekeeper.core.snapshot import Limits
from gatekeeper.core.symbols import InstrumentType

if TYPE_CHECKING:
    from gatekeeper.core.rules import RequestFacts

_ZERO = Decimal(0)
_OPTIONS = (InstrumentType.EQUITY_OPTION, InstrumentType.FUTURE_OPTION)


@dataclass(frozen=True, slots=True)
class OrderPrice:
    """One priced order against its quotes, per unit of the order's price.

    ``pays``: a debit (a buy; collared above the ask side) or a credit (collared below the
    bid side). ``natural``: what the order would pay (ask side) or receive (bid side) at the
    quotes now; ``width``: the bid-ask width of the same combination; ``price``: the limit
    price (``None`` for a market order; stop orders without a limit are not collared).
    """

    name: str
    kind: str  # "equity", "option" or "future": which collar applies
    pays: bool
    price: Decimal | None
    natural: Decimal
    width: Decimal


def order_prices(orders: Iterable[Order], prices: Prices) -> tuple[OrderPrice, ...]:
    """Each order's price against its quotes (orders with an unquoted leg are skipped: they
    are refused ``price_unavailable`` or ``quote_invalid`` by their own rule)."""
    found = []
    for order in orders:
        if order.value is not None or not order.legs:
            continue
        units = order.units
        natural = width = _ZERO
        quoted = True
        for leg in order.legs:
            sides = prices.bid_ask(leg.symbol)
            if sides is None or leg.quantity is None:
                quoted = False
                break
            bid, ask = sides
            ratio = leg.quantity / units
            natural += ratio * (ask if leg.is_buy else -bid)
            width += ratio * (ask - bid)
        if not quoted:
            continue
        pays = (
            order.price_effect is PriceEffect.DEBIT
            if order.price_effect is not None
            else natural >= 0
        )
        # A stop's trigger beyond the market is how a stop works (risk-model R17): only
        # limit prices are collared; a stop-limit's limit is.
        price = order.price if order.has_limit_price else None
        if price is None and order.stop_trigger is not None:
            continue
        found.append(
            OrderPrice(
                name="/".join(" ".join(leg.symbol.split()) for leg in order.legs),
                kind=_kind(order),
                pays=pays,
                price=price,
                natural=natural if pays else -natural,
                width=width,
            )
        )
    return tuple(found)


def _kind(order: Order) -> str:
    types = {leg.instrument_type for leg in order.legs}
    if types & set(_OPTIONS):
        return "option"
    if types == {InstrumentType.FUTURE}:
        return "future"
    return "equity"


def _tolerance(item: OrderPrice, limits: Limits) -> Decimal | None:
    percent = {
        "equity": limits.price_collar_equity_percentage,
        "option": limits.price_collar_option_percentage,
        "future": limits.price_collar_future_percentage,
    }[item.kind]
    if percent is None:
        return None
    tolerance = abs(item.natural) * percent / HUNDRED
    multiple = limits.price_collar_option_width_multiple
    if item.kind == "option" and multiple is not None:
        tolerance = max(tolerance, item.width * multiple)
    return tolerance


def check_price_collar(request: RequestFacts, limits: Limits) -> list[Violation]:
    """A limit or stop price too far beyond the quote on the unfavourable side, or a market
    order on an option whose spread is wider than the collar, is refused."""
    if not limits.active or request.facts.risk_reducing:
        return []
    found = []
    for item in request.facts.order_prices:
        tolerance = _tolerance(item, limits)
        if tolerance is None:
            continue
        if item.price is None:
            percent = limits.price_collar_option_percentage
            wide = percent is not None and item.width * HUNDRED > percent * abs(item.natural)
            if item.kind == "option" and wide:
                found.append(_market_too_wide(item, percent or _ZERO, limits))
            continue
        worst = item.natural + tolerance if item.pays else item.natural - tolerance
        beyond = item.price > worst if item.pays else item.price < worst
        if beyond:
            found.append(_collar(item, worst, limits))
    return found


def _collar(item: OrderPrice, worst: Decimal, limits: Limits) -> Violation:
    side = "buy above" if item.pays else "sell below"
    quote = "ask" if item.pays else "bid"
    return Violation(
        Code.PRICE_COLLAR,
        f"price_collar: {item.name} {side} the market: price {item.price:f} against the "
        f"{quote} {item.natural:f}; the {item.kind} collar allows at most {worst:f}",
        {
            "symbols": item.name,
            "price": str(item.price),
            "quote": str(item.natural),
            "limit": str(worst),
            "kind": item.kind,
        },
        limits.protection_id,
    )


def _market_too_wide(item: OrderPrice, percent: Decimal, limits: Limits) -> Violation:
    return Violation(
        Code.PRICE_COLLAR,
        f"price_collar: market order on {item.name} with a bid-ask width of {item.width:f} "
        f"against {abs(item.natural):f}, wider than the {percent}% option collar; "
        "send a limit order",
        {"symbols": item.name, "width": str(item.width), "quote": str(item.natural)},
        limits.protection_id,
    )


def check_max_order_quantity(request: RequestFacts, limits: Limits) -> list[Violation]:
    """No leg may exceed the protection's quantity cap for its instrument type."""
    if not limits.active or request.facts.risk_reducing:
        return []
    found = []
    for symbol, instrument_type, quantity in request.facts.leg_quantities:
        cap = limits.max_order_quantity.get(instrument_type)
        if cap is None or quantity <= cap:
            continue
        found.append(
            Violation(
                Code.MAX_ORDER_QUANTITY,
                f"max_order_quantity: {' '.join(symbol.split())} quantity {quantity:f} is "
                f"above the {cap:f} limit for {instrument_type.value}",
                {"symbol": symbol, "quantity": str(quantity), "limit": str(cap)},
                limits.protection_id,
            )
        )
    return found


def check_account_restricted(request: RequestFacts) -> list[Violation]:
    """The broker's own restrictions: a frozen or closed account takes nothing; a
    closing-only account or one in a margin call only risk-reducing orders."""
    status = request.facts.trading_status
    reducing = request.facts.risk_reducing
    if status.is_frozen or status.is_closed:
        state = "frozen" if status.is_frozen else "closed"
        return [
            Violation(
                Code.ACCOUNT_RESTRICTED,
                f"account_restricted: the broker reports the account {state}",
                {"state": state},
            )
        ]
    if status.is_closing_only and not reducing:
        return [
            Violation(
                Code.ACCOUNT_CLOSING_ONLY,
                "account_closing_only: the broker allows this account closing orders only, "
                "and this order is not risk-reducing",
            )
        ]
    if status.is_in_margin_call and not reducing:
        return [
            Violation(
                Code.ACCOUNT_MARGIN_CALL,
                "account_margin_call: the account is in a margin call; only risk-reducing "
                "orders are accepted",
            )
        ]
    return []
