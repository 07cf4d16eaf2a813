"""The account facts every rule reads (:class:`~gatekeeper.core.facts_record.Facts`),
computed once per evaluation on the general path, which values every holding.

Before = positions plus working and in-flight orders as filled (of a complex working order,
its worst alternative). After = before plus the request, for each of the request's worlds
(:func:`gatekeeper.core.holdings.request_worlds`); the figures are those of the worst world,
metric by metric (largest order value, exposure and group risk, smallest free cash).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal

from gatekeeper.core.effect import Book
from gatekeeper.core.facts_record import (
    Entry,
    Facts,
    Outcome,
    by_group,
    facts_of,
    largest_of,
    split_request,
    total_of,
)
from gatekeeper.core.holdings import (
    OrderInput,
    Valuer,
    World,
    pending_worlds,
    request_worlds,
)
from gatekeeper.core.order import Order
from gatekeeper.core.pricing import Prices
from gatekeeper.core.risk import GroupRisk, Holding, group_risk, strikes_of
from gatekeeper.core.snapshot import AccountSnapshot, RiskParameters
from gatekeeper.core.symbols import InstrumentType

_ZERO = Decimal(0)


class _Account:
    """Risk per group of a set of holdings, on shared scenario strikes."""

    def __init__(self, prices: Prices, params: RiskParameters, strikes: Mapping[str, set[Decimal]]):
        self._prices = prices
        self._params = params
        self._strikes = strikes

    def risk(self, group: str, entries: Sequence[Entry]) -> GroupRisk | None:
        if any(isinstance(e, str) for e in entries):
            return None
        holdings = [e for e in entries if isinstance(e, Holding)]
        if not holdings:
            return GroupRisk(group, _ZERO, False)
        reference = self._prices.mark(min(h.instrument.underlying for h in holdings))
        if reference is None:
            return None
        return group_risk(
            group,
            _net(holdings),
            reference,
            self._params.stress_up_percentage,
            self._strikes.get(group, ()),
        )


def _net(holdings: Iterable[Holding]) -> list[Holding]:
    merged: dict[str, Holding] = {}
    for h in holdings:
        seen = merged.get(h.instrument.symbol)
        merged[h.instrument.symbol] = (
            h if seen is None else Holding(h.instrument, seen.quantity + h.quantity, h.mark)
        )
    return list(merged.values())


def _buyback(positions: Iterable[Entry], after: Iterable[Entry]) -> Decimal | None:
    """Cost to buy back, at mark, the held shorts (stock and options; futures are margined)
    that are still short once the orders fill. Their sale proceeds are in the cash balance;
    a short the orders open brings its own proceeds, which count neither way."""
    held = _net_entries(positions)
    remaining = {
        h.instrument.symbol: h.quantity for h in _net_entries(after) if isinstance(h, Holding)
    }
    if any(isinstance(e, str) for e in (*held, *_net_entries(after))):
        return None
    total = _ZERO
    for entry in held:
        assert isinstance(entry, Holding)  # noqa: S101 - strings returned above
        if entry.quantity >= 0 or entry.instrument.instrument_type is InstrumentType.FUTURE:
            continue
        still_short = min(
            -entry.quantity, max(-remaining.get(entry.instrument.symbol, _ZERO), _ZERO)
        )
        total += still_short * entry.instrument.multiplier * entry.mark
    return total


def _net_entries(entries: Iterable[Entry]) -> list[Entry]:
    listed = list(entries)
    return [e for e in listed if isinstance(e, str)] + list(
        _net(e for e in listed if isinstance(e, Holding))
    )


def account_facts(
    orders: OrderInput,
    snapshot: AccountSnapshot,
    params: RiskParameters,
    prices: Prices,
    *,
    in_flight: Sequence[Order] = (),
    replaces_order_id: str | None = None,
    fees: Decimal = _ZERO,
) -> Facts:
    """Compute the :class:`Facts` of a request (see the module docstring)."""
    valuer = Valuer(snapshot, prices)
    working = [
        w
        for w in snapshot.working_orders
        if replaces_order_id is None or w.order_id != replaces_order_id
    ]
    closes_only = _closes_only(orders, snapshot, [w.order for w in working], in_flight)
    worlds = request_worlds(orders)
    filled = [valuer.filled(world) for world in worlds]
    touched = list(dict.fromkeys(g for f in filled for g in by_group(f)))
    pending = pending_worlds(working, in_flight)
    pending_filled = [[valuer.filled(world) for world in alts] for alts in pending]
    positions = valuer.positions()

    everything = [*positions, *(e for alts in pending_filled for w in alts for e in w)]
    everything += [e for f in filled for e in f]
    strikes = {
        g: strikes_of(e for e in entries if isinstance(e, Holding))
        for g, entries in by_group(everything).items()
    }
    account = _Account(prices, params, strikes)
    base, pending_debits = _choose_pending(account, positions, pending, pending_filled, valuer)
    before = {g: account.risk(g, entries) for g, entries in by_group(base).items()}
    exposure_before = total_of(before.values())

    def outcome(world: World, added: list[Entry]) -> Outcome:
        groups = by_group([*base, *added])
        risks = {
            g: account.risk(g, groups[g]) if g in groups else GroupRisk(g, _ZERO, False)
            for g in touched
        }
        untouched = total_of(r for g, r in before.items() if g not in risks)
        debit = valuer.debits(world)
        debit = None if debit is None else debit + fees
        buyback = _buyback(positions, [*base, *added])
        return Outcome(
            risks, untouched, exposure_before, debit, buyback, snapshot.cash_balance, pending_debits
        )

    outcomes = [outcome(w, f) for w, f in zip(worlds, filled, strict=True)]
    return facts_of(
        orders,
        snapshot,
        prices,
        worlds,
        outcomes,
        touched=touched,
        before=before,
        closes_only=closes_only,
        exposure_before=exposure_before,
        pending_debits=pending_debits,
    )


def _closes_only(
    orders: OrderInput,
    snapshot: AccountSnapshot,
    working: Sequence[Order],
    in_flight: Sequence[Order],
) -> bool:
    """Every leg closes held quantity, after what pending closes already cover."""
    book = Book(snapshot.positions)
    for order in (*working, *in_flight):
        book.split(order)
    return all(split.is_verified_close for split in split_request(orders, book))


def _choose_pending(
    account: _Account,
    positions: list[Entry],
    pending: list[tuple[World, ...]],
    filled: list[list[list[Entry]]],
    valuer: Valuer,
) -> tuple[list[Entry], Decimal | None]:
    """Positions plus pending orders as filled, taking for each complex order the world that
    leaves the most risk; the pending debits take each complex order's largest debit."""
    base = list(positions)
    for worlds in filled:
        if len(worlds) == 1:
            base.extend(worlds[0])
    for worlds in filled:
        if len(worlds) > 1:
            base.extend(max(worlds, key=lambda w: _risk_with(account, [*base, *w], w)))
    total: Decimal | None = _ZERO
    for alternatives in pending:
        largest = largest_of([valuer.debits(world) for world in alternatives])
        total = None if total is None or largest is None else total + largest
    return base, total


def _risk_with(account: _Account, entries: list[Entry], world: Iterable[Entry]) -> Decimal:
    groups = by_group(entries)
    total = _ZERO
    for g in by_group(world):
        risk = account.risk(g, groups[g])
        total += Decimal("Infinity") if risk is None else risk.risk
    return total
