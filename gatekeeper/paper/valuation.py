"""An account's money at current marks: what the balances endpoints report.

Stock and options (equity and future options, which CME settles premium-style) are worth
``quantity x mark x multiplier``: buying one pays its price from cash, and it counts in NLV
at its mark. A future is margined: opening one moves no cash and it is worth its open P&L,
``(mark - average open price) x quantity x multiplier``, in NLV; closing it credits or debits
the realized P&L to cash. While open it ties up ``FUTURES_MARGIN_RATE`` of its notional value
as margin (initial and maintenance alike), which buying power no longer counts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from gatekeeper.paper.model import EQUITY, FUTURE, Account, Position

ZERO = Decimal(0)
# About what CME asks for equity index futures; one figure for every product keeps it simple.
FUTURES_MARGIN_RATE = Decimal("0.05")


def futures_margin(notional: Decimal) -> Decimal:
    """Margin a futures position (or order) of this absolute notional value ties up."""
    return abs(notional) * FUTURES_MARGIN_RATE


def nlv_contribution(
    instrument_type: str,
    quantity: Decimal,
    mark: Decimal,
    average_open: Decimal,
    multiplier: Decimal,
) -> Decimal:
    """What a position adds to net liquidating value (``quantity`` signed, short < 0)."""
    if instrument_type == FUTURE:
        return (mark - average_open) * quantity * multiplier
    return quantity * mark * multiplier


@dataclass(frozen=True)
class Valuation:
    """An account's money; the stock, option and futures values are non-negative.

    ``long_futures``/``short_futures`` are notional values (not part of NLV);
    ``futures_pnl`` is the open P&L of futures positions (signed, part of NLV).
    """

    cash: Decimal
    long_equity: Decimal
    short_equity: Decimal
    long_derivative: Decimal
    short_derivative: Decimal
    reserved: Decimal  # estimated debit of working orders
    long_futures: Decimal = ZERO
    short_futures: Decimal = ZERO
    futures_pnl: Decimal = ZERO

    @property
    def net_liquidating_value(self) -> Decimal:
        return (
            self.cash
            + self.long_equity
            + self.long_derivative
            - self.short_equity
            - self.short_derivative
            + self.futures_pnl
        )

    @property
    def futures_margin(self) -> Decimal:
        return futures_margin(self.long_futures + self.short_futures)

    @property
    def derivative_buying_power(self) -> Decimal:
        available = self.cash + self.futures_pnl - self.reserved - self.futures_margin
        return max(ZERO, available)


def value_account(
    account: Account, mark_of: Callable[[Position], Decimal], reserved: Decimal
) -> Valuation:
    """The account's valuation at ``mark_of`` each position, with ``reserved`` for orders."""
    totals = {"le": ZERO, "se": ZERO, "ld": ZERO, "sd": ZERO, "lf": ZERO, "sf": ZERO}
    futures_pnl = ZERO
    for position in account.positions.values():
        mark = mark_of(position)
        value = abs(position.quantity) * mark * position.multiplier
        side = "l" if position.quantity > 0 else "s"
        if position.instrument_type == FUTURE:
            totals[side + "f"] += value
            futures_pnl += nlv_contribution(
                FUTURE, position.quantity, mark, position.average_open_price, position.multiplier
            )
        else:
            totals[side + ("e" if position.instrument_type == EQUITY else "d")] += value
    return Valuation(
        cash=account.cash,
        long_equity=totals["le"],
        short_equity=totals["se"],
        long_derivative=totals["ld"],
        short_derivative=totals["sd"],
        reserved=reserved,
        long_futures=totals["lf"],
        short_futures=totals["sf"],
        futures_pnl=futures_pnl,
    )
