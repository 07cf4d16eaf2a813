"""Worst-case loss of one underlying group (``shared/risk-model.md`` section 3).

A group's holdings are valued at the underlying's price ``S`` at each option's expiry: stock
and futures ``q·S·m``, calls ``q·max(S−K, 0)·m``, puts ``q·max(K−S, 0)·m``. Options are
bucketed by expiry; stock and futures join the earliest bucket holding short calls (they cover
them), else the last bucket. A long option of a later expiry covers a short of the same type in
an earlier bucket, unit for unit, and is valued there at its intrinsic value (Reg-T calendar
and diagonal treatment); a long never covers a short that outlives it.

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


@dataclass(frozen=True, slots=True)
class _Bucket:
    expiry: date | None
    members: list[Holding]


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
    total = _ZERO
    unbounded = False
    worst: tuple[Decimal, Decimal, date | None] | None = None
    for bucket in _buckets(live):
        marks = sum((h.mark_value for h in bucket.members), _ZERO)
        loss, price = max(
            ((marks - sum((h.value_at(p) for h in bucket.members), _ZERO), p) for p in prices),
            key=lambda pair: pair[0],
        )
        unbounded = unbounded or _net_short_upside(bucket.members)
        if loss <= 0:
            continue
        total += loss
        if worst is None or loss > worst[0]:
            worst = (loss, price, bucket.expiry)
    if worst is None:
        return GroupRisk(group, _ZERO, unbounded, reference_price=reference)
    return GroupRisk(group, total, unbounded, worst[1], worst[2], reference)


def _net_short_upside(members: Iterable[Holding]) -> bool:
    exposure = sum(
        (
            h.units
            for h in members
            if h.instrument.option is None or h.instrument.option.kind is OptionKind.CALL
        ),
        _ZERO,
    )
    return exposure < 0


def _buckets(holdings: Sequence[Holding]) -> list[_Bucket]:
    options = [h for h in holdings if h.instrument.option is not None]
    linear = [h for h in holdings if h.instrument.option is None]
    expiries = sorted({h.instrument.option.expiry for h in options if h.instrument.option})
    if not expiries:
        return [_Bucket(None, list(linear))]
    buckets = [
        _Bucket(e, [h for h in options if h.instrument.option and h.instrument.option.expiry == e])
        for e in expiries
    ]
    for index, bucket in enumerate(buckets):
        for kind in OptionKind:
            _cover_from_later(bucket, buckets[index + 1 :], kind)
    home = next((b for b in buckets if any(_is_short_call(h) for h in b.members)), buckets[-1])
    home.members.extend(linear)
    return buckets


def _is_short_call(holding: Holding) -> bool:
    option = holding.instrument.option
    return option is not None and option.kind is OptionKind.CALL and holding.quantity < 0


def _units_of(members: Iterable[Holding], kind: OptionKind, *, long: bool) -> Decimal:
    return sum(
        (
            abs(h.units)
            for h in members
            if h.instrument.option is not None
            and h.instrument.option.kind is kind
            and (h.quantity > 0) is long
        ),
        _ZERO,
    )


def _cover_from_later(bucket: _Bucket, later: Sequence[_Bucket], kind: OptionKind) -> None:
    """Move spare longs of ``kind`` from later buckets into ``bucket`` to cover its shorts."""
    need = _units_of(bucket.members, kind, long=False) - _units_of(bucket.members, kind, long=True)
    for source in later:
        if need <= 0:
            return
        spare = _units_of(source.members, kind, long=True) - _units_of(
            source.members, kind, long=False
        )
        # The best cover first: the lowest call strike, the highest put strike.
        candidates = sorted(
            (
                h
                for h in source.members
                if h.quantity > 0 and h.instrument.option and h.instrument.option.kind is kind
            ),
            key=lambda h: h.instrument.option.strike if h.instrument.option else _ZERO,
            reverse=kind is OptionKind.PUT,
        )
        for holding in candidates:
            take = min(need, spare, holding.units)
            if take <= 0:
                break
            quantity = take / holding.instrument.multiplier
            source.members.remove(holding)
            if holding.quantity > quantity:
                source.members.append(
                    Holding(holding.instrument, holding.quantity - quantity, holding.mark)
                )
            bucket.members.append(Holding(holding.instrument, quantity, holding.mark))
            need -= take
            spare -= take
