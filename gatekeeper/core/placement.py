"""The placement search of ``Risk(group)`` (``shared/risk-model.md`` section 3): which bucket
each later long and the group's stock and futures are counted in.

A bucket holds the options of one expiry. A long option may also be counted in an earlier
bucket, valued there at its intrinsic value (it can be sold then for at least that); stock and
futures join one bucket, where they add the least. :func:`best_placement` tries every
placement (coordinate descent beyond :data:`EXHAUSTIVE` of them) and keeps the one with the
smallest total risk. Which buckets a holding may go to is the model's rule, decided by the
caller (:func:`gatekeeper.core.risk.movable_to`); this module only sums and compares.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from itertools import product

_ZERO = Decimal(0)
EXHAUSTIVE = 2048  # placements tried one by one; beyond, coordinate descent


def worst_loss(mark: Decimal, values: Sequence[Decimal]) -> tuple[Decimal, int]:
    """(max(mark - value, 0) at the worst scenario, the first index of that scenario)."""
    worst, best = 0, mark - values[0]
    for index in range(1, len(values)):
        loss = mark - values[index]
        if loss > best:
            worst, best = index, loss
    return (_ZERO if best < _ZERO else best), worst


@dataclass(frozen=True, slots=True)
class Valued:
    """One holding valued once (see :func:`gatekeeper.core.risk.payoff`): its expiry (``None``
    for stock and futures), mark value, value at every scenario price, upside units, and
    whether it is a short call."""

    expiry: date | None
    mark: Decimal
    values: tuple[Decimal, ...]
    upside: Decimal  # units that gain (> 0) or lose (< 0) without bound above S_hi
    short_call: bool


@dataclass(frozen=True, slots=True)
class Bucket:
    """What a bucket holds, summed: marks, values per scenario, upside units."""

    mark: Decimal
    values: tuple[Decimal, ...]
    upside: Decimal
    short_call: bool

    @classmethod
    def empty(cls, size: int) -> Bucket:
        return cls(_ZERO, (_ZERO,) * size, _ZERO, False)

    @classmethod
    def of(cls, legs: Iterable[Valued], size: int) -> Bucket:
        total = cls.empty(size)
        for leg in legs:
            total = total.plus(leg)
        return total

    def plus(self, other: Valued | Bucket) -> Bucket:
        return Bucket(
            self.mark + other.mark,
            tuple(a + b for a, b in zip(self.values, other.values, strict=True)),
            self.upside + other.upside,
            self.short_call or other.short_call,
        )

    def loss(self) -> tuple[Decimal, int]:
        """(Risk of the bucket, the index of the scenario price that sets it)."""
        return worst_loss(self.mark, self.values)


def best_placement(
    fixed: list[Bucket],
    movable: list[tuple[Valued, list[int]]],
    linear: Bucket | None,
) -> list[Bucket]:
    """The buckets with each movable long counted in one of the buckets it may go to (its
    own first), and stock and futures (``linear``) in one bucket, choosing the placement with
    the smallest total risk.

    Counting a long in an earlier bucket at its intrinsic value there is sound (it can be sold
    then for at least that): this is Reg-T's calendar and diagonal cover, and never lets a long
    that expires first cover a later short. Taking the smallest total keeps the model monotone:
    adding a long never costs more than its mark, buying back a short never more than its cost.
    """
    choices = [options for _, options in movable]
    count = 1
    for options in choices:
        count *= len(options)
    if count <= EXHAUSTIVE:
        candidates: Iterable[tuple[int, ...]] = product(*choices)
        return min((_place(fixed, movable, c, linear) for c in candidates), key=_total)
    current = [options[0] for options in choices]
    best = _place(fixed, movable, current, linear)
    improved = True
    while improved:
        improved = False
        for slot, options in enumerate(choices):
            for target in options:
                trial = [*current[:slot], target, *current[slot + 1 :]]
                placed = _place(fixed, movable, trial, linear)
                if _total(placed) < _total(best):
                    best, current, improved = placed, trial, True
    return best


def _total(buckets: Sequence[Bucket]) -> Decimal:
    return sum((b.loss()[0] for b in buckets), _ZERO)


def _place(
    fixed: list[Bucket],
    movable: list[tuple[Valued, list[int]]],
    targets: Sequence[int],
    linear: Bucket | None,
) -> list[Bucket]:
    buckets = list(fixed)
    for (leg, _), target in zip(movable, targets, strict=True):
        buckets[target] = buckets[target].plus(leg)
    if linear is None:
        return buckets
    # Stock and futures join the bucket where they add the least risk; on a tie the earliest
    # holding short calls (they cover them, as a covered call does), else the last.
    preferred = next((i for i, b in enumerate(buckets) if b.short_call), len(buckets) - 1)
    order = [preferred, *(i for i in range(len(buckets)) if i != preferred)]
    home = min(order, key=lambda i: buckets[i].plus(linear).loss()[0] - buckets[i].loss()[0])
    buckets[home] = buckets[home].plus(linear)
    return buckets
