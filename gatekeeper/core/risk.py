"""Worst-case loss of one underlying group (``shared/risk-model.md`` section 3).

A group's holdings are valued at the underlying's price ``S`` at each option's expiry: stock
and futures ``q·S·m``, calls ``q·max(S-K, 0)·m``, puts ``q·max(K-S, 0)·m``. Options are
bucketed by expiry. A long option may also be counted in an earlier bucket, valued there at
its intrinsic value (it can be sold then for at least that): this covers calendars and
diagonals as Reg-T does, and a long never covers a short that outlives it (reverse calendars
stay naked). Stock and futures join one bucket: usually the earliest holding short calls
(covered calls), else the last. Of the possible placements, the one with the smallest total
is taken (:mod:`gatekeeper.core.placement`): every placement is a sound bound, and the
smallest keeps the model monotone.

``Risk(bucket)`` is the largest loss (marks now minus values at ``S``) over the scenarios
``{0, S0, every strike, S_hi}``, floored at 0; payoffs are piecewise linear with kinks only at
strikes, so these points give the exact worst case on ``[0, S_hi]``. ``Risk(group)`` is the sum
over buckets. A bucket net short in calls, stock and futures is unbounded: its loss keeps
growing above ``S_hi``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from gatekeeper.core.instruments import Instrument
from gatekeeper.core.placement import Bucket, Valued, best_placement, worst_loss
from gatekeeper.core.symbols import OptionKind

_ZERO = Decimal(0)
_HUNDRED = Decimal(100)


@dataclass(frozen=True, slots=True)
class Holding:
    """A signed quantity of one instrument (long > 0) and its mark (price per unit now)."""

    instrument: Instrument
    quantity: Decimal
    mark: Decimal

    @property
    def units(self) -> Decimal:
        """Signed quantity times multiplier (shares, or points of the underlying)."""
        return self.quantity * self.instrument.multiplier

    @property
    def mark_value(self) -> Decimal:
        """What the holding is worth now."""
        return self.units * self.mark

    def value_at(self, price: Decimal) -> Decimal:
        """What the holding is worth if the underlying ends at ``price`` (at expiry)."""
        option = self.instrument.option
        if option is None:
            return self.units * price
        if option.kind is OptionKind.CALL:
            return self.units * max(price - option.strike, _ZERO)
        return self.units * max(option.strike - price, _ZERO)


@dataclass(frozen=True, slots=True)
class GroupRisk:
    """``Risk(group)`` and the scenario that sets it (the largest bucket's worst case)."""

    group: str
    risk: Decimal
    unbounded: bool
    worst_price: Decimal | None = None
    worst_expiry: date | None = None
    reference_price: Decimal | None = None

    def scenario(self) -> str:
        """``SPX at 0.00 on 2026-12-18`` (or without a date for stock and futures)."""
        if self.worst_price is None:
            return f"{self.group}: no loss in any scenario"
        text = f"{self.group} at {self.worst_price.quantize(Decimal('0.01')):,}"
        if self.worst_expiry is not None:
            text += f" on {self.worst_expiry.isoformat()}"
        return text + (" (unbounded above)" if self.unbounded else "")


def scenario_prices(
    reference: Decimal, strikes: Iterable[Decimal], stress_up_percentage: Decimal
) -> tuple[Decimal, ...]:
    """``{0, S0, every strike, S_hi}`` in ascending order."""
    known = {reference, *strikes}
    high = max(known) + reference * stress_up_percentage / _HUNDRED
    return tuple(sorted({_ZERO, *known, high}))


def strikes_of(holdings: Iterable[Holding]) -> set[Decimal]:
    """Every option strike among ``holdings``."""
    return {h.instrument.option.strike for h in holdings if h.instrument.option is not None}


def group_risk(
    group: str,
    holdings: Sequence[Holding],
    reference: Decimal,
    stress_up_percentage: Decimal,
    extra_strikes: Iterable[Decimal] = (),
) -> GroupRisk:
    """``Risk(group)`` of ``holdings`` (all of one group) at reference price ``reference``.

    ``extra_strikes`` widen the scenario set, so that a group before and after an order is
    judged on the same prices (a far strike bought as protection must not look riskier only
    because it moved ``S_hi``).
    """
    live = [h for h in holdings if h.quantity != 0]
    if not live:
        return GroupRisk(group, _ZERO, False, reference_price=reference)
    prices = scenario_prices(reference, strikes_of(live) | set(extra_strikes), stress_up_percentage)
    payoffs = [payoff(h, prices) for h in live]
    expiries = sorted({p[0] for p in payoffs if p[0] is not None})
    if not expiries:
        return _single_placement(group, reference, prices, [], payoffs, [None])
    position = {expiry: index for index, expiry in enumerate(expiries)}
    fixed: list[tuple[Payoff, int]] = []
    linear: list[Payoff] = []
    movable = False
    for holding, leg in zip(live, payoffs, strict=True):
        if leg[0] is None:
            linear.append(leg)
            continue
        own = position[leg[0]]
        fixed.append((leg, own))
        movable = movable or bool(movable_to(holding, own, len(expiries)))
    if not movable:  # one placement only: summed in place (the same sums, in the same order)
        return _single_placement(group, reference, prices, fixed, linear, expiries)
    return _placed(group, reference, prices, live, payoffs, expiries)


def _placed(
    group: str,
    reference: Decimal,
    prices: Sequence[Decimal],
    live: Sequence[Holding],
    payoffs: Sequence[Payoff],
    expiries: list[date],
) -> GroupRisk:
    """Risk when later longs may cover earlier shorts: every placement is tried."""
    legs = [(h, Valued(*p)) for h, p in zip(live, payoffs, strict=True)]
    linear = [leg for _, leg in legs if leg.expiry is None]
    position = {expiry: index for index, expiry in enumerate(expiries)}
    fixed = [Bucket.empty(len(prices)) for _ in expiries]
    movable: list[tuple[Valued, list[int]]] = []
    for holding, leg in legs:
        if leg.expiry is None:
            continue
        own = position[leg.expiry]
        options = movable_to(holding, own, len(expiries))
        if options:
            movable.append((leg, options))
        else:
            fixed[own] = fixed[own].plus(leg)
    best = best_placement(fixed, movable, Bucket.of(linear, len(prices)) if linear else None)
    return _result(group, reference, prices, best, expiries)


Payoff = tuple[date | None, Decimal, tuple[Decimal, ...], Decimal, bool]


def payoff(holding: Holding, prices: Sequence[Decimal]) -> Payoff:
    """A holding's expiry, mark value and value at every scenario price, computed once (the
    formulas of :meth:`Holding.mark_value` and :meth:`Holding.value_at`), its upside units
    (that gain (> 0) or lose (< 0) without bound above ``S_hi``) and whether it is a short
    call."""
    instrument = holding.instrument
    option = instrument.option
    units = holding.quantity * instrument.multiplier
    mark = units * holding.mark
    if option is None:
        return None, mark, tuple([units * p for p in prices]), units, False
    strike = option.strike
    if option.kind is OptionKind.CALL:
        values = [units * (_ZERO if (d := p - strike) < _ZERO else d) for p in prices]
        return option.expiry, mark, tuple(values), units, holding.quantity < 0
    values = [units * (_ZERO if (d := strike - p) < _ZERO else d) for p in prices]
    return option.expiry, mark, tuple(values), _ZERO, False


def _single_placement(
    group: str,
    reference: Decimal,
    prices: Sequence[Decimal],
    fixed: Sequence[tuple[Payoff, int]],
    linear: Sequence[Payoff],
    expiries: Sequence[date | None],
) -> GroupRisk:
    """:func:`~gatekeeper.core.placement.best_placement` when no long may move: every option
    in its own bucket, stock and futures where they add the least (the arithmetic of
    :class:`~gatekeeper.core.placement.Bucket`, in place)."""
    size, count = len(prices), len(expiries)
    if fixed:
        marks = [_ZERO] * count
        values = [[_ZERO] * size for _ in expiries]
        upside = [_ZERO] * count
        short_call = [False] * count
        for (_, mark, leg_values, leg_upside, leg_short_call), own in fixed:
            marks[own] += mark
            values[own] = [a + b for a, b in zip(values[own], leg_values, strict=True)]
            upside[own] += leg_upside
            short_call[own] = short_call[own] or leg_short_call
    if linear:
        line_mark, line_upside, line = _ZERO, _ZERO, [_ZERO] * size
        for _, mark, leg_values, leg_upside, _ in linear:
            line_mark += mark
            line = [a + b for a, b in zip(line, leg_values, strict=True)]
            line_upside += leg_upside
        if not fixed:  # stock and futures only: one bucket
            marks, values, upside = [line_mark], [line], [line_upside]
        else:
            preferred = next((i for i, flag in enumerate(short_call) if flag), count - 1)
            order = [preferred, *(i for i in range(count) if i != preferred)]

            def joined(i: int) -> list[Decimal]:
                return [a + b for a, b in zip(values[i], line, strict=True)]

            def added(i: int) -> Decimal:
                return (
                    worst_loss(marks[i] + line_mark, joined(i))[0]
                    - worst_loss(marks[i], values[i])[0]
                )

            home = min(order, key=added) if count > 1 else 0
            marks[home] = marks[home] + line_mark
            values[home] = joined(home)
            upside[home] = upside[home] + line_upside
    scored = [worst_loss(marks[i], values[i]) for i in range(count)]
    total = _ZERO
    worst = 0
    for i, (loss, _) in enumerate(scored):
        total += loss
        if loss > scored[worst][0]:
            worst = i
    loss, index = scored[worst]
    unbounded = any(u < _ZERO for u in upside)
    if loss <= 0:
        return GroupRisk(group, _ZERO, unbounded, reference_price=reference)
    return GroupRisk(group, total, unbounded, prices[index], expiries[worst], reference)


def _result(
    group: str,
    reference: Decimal,
    prices: Sequence[Decimal],
    buckets: Sequence[Bucket],
    expiries: Sequence[date | None],
) -> GroupRisk:
    scored = [b.loss() for b in buckets]
    total = sum((loss for loss, _ in scored), _ZERO)
    unbounded = any(b.upside < 0 for b in buckets)
    worst = max(range(len(scored)), key=lambda i: scored[i][0])
    loss, index = scored[worst]
    if loss <= 0:
        return GroupRisk(group, _ZERO, unbounded, reference_price=reference)
    return GroupRisk(group, total, unbounded, prices[index], expiries[worst], reference)


def movable_to(holding: Holding, own: int, buckets: int) -> list[int]:
    """The buckets (by expiry index) a holding of bucket ``own`` may be counted in, its own
    first: a long option also in any earlier one; anything else only in its own."""
    del buckets  # every later long may go to any earlier bucket, whatever their number
    if holding.quantity > 0 and own > 0:
        return list(range(own, -1, -1))
    return []
