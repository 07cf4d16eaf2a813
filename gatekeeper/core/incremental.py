"""The account facts of a request on a prepared snapshot: only the groups that the request,
a working order or an in-flight order touches are valued again.

It follows :func:`gatekeeper.core.facts.account_facts` step by step (the same holdings, the
same sums in the same order, the same price look-ups in the same order, so the same problems
in the same order) but reads every untouched group's risk, the exposure and the cost of
buying back untouched shorts from :class:`~gatekeeper.core.prepared.PreparedAccount`.
``tests/unit/test_core_incremental.py`` checks both give identical facts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
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
from gatekeeper.core.prepared import PreparedAccount
from gatekeeper.core.pricing import Prices
from gatekeeper.core.risk import GroupRisk, Holding, group_risk, strikes_of

_ZERO = Decimal(0)
_INFINITY = Decimal("Infinity")


class _Groups:
    """The positions of a prepared snapshot by group, plus what pending orders add."""

    def __init__(self, ready: PreparedAccount, prices: Prices, strikes: dict[str, set[Decimal]]):
        self.ready = ready
        self.prices = prices
        self.strikes = strikes  # only the groups whose strikes grew
        self.extra: dict[str, list[Entry]] = {}  # pending entries per group (base order)

    def add(self, entries: Iterable[Entry]) -> None:
        for entry in entries:
            key = entry if isinstance(entry, str) else entry.instrument.group
            self.extra.setdefault(key, []).append(entry)

    def entries(self, group: str, added: Sequence[Entry] = ()) -> list[Entry]:
        return [*self.ready.groups.get(group, ()), *self.extra.get(group, ()), *added]

    def risk(self, group: str, added: Sequence[Entry] = ()) -> GroupRisk | None:
        """Risk of the group with ``added`` on top (the general path's ``_Account.risk``)."""
        if not added and group not in self.extra and group not in self.strikes:
            cached = self.ready.risks.get(group)
            if cached is not None:
                return cached
        entries = self.entries(group, added)
        if any(isinstance(e, str) for e in entries):
            return None
        holdings = [e for e in entries if isinstance(e, Holding)]
        if not holdings:
            return GroupRisk(group, _ZERO, False)
        reference = self.prices.mark(min(h.instrument.underlying for h in holdings))
        if reference is None:
            return None
        strikes = self.strikes.get(group)
        # a held group judged on an order's strikes: the same for every order on them
        key = None
        if strikes is not None and not added and group not in self.extra:
            key = (group, frozenset(map(str, strikes)))  # 450 and 450.0 print apart
            found = self.ready.widened.get(key)
            if found is not None:
                return found
        risk = group_risk(
            group,
            _net(holdings),
            reference,
            self.ready.params.stress_up_percentage,
            self.ready.strikes.get(group, frozenset()) if strikes is None else strikes,
        )
        if key is not None and group in self.ready.order:
            self.ready.remember(key, risk)
        return risk


def incremental_facts(
    orders: OrderInput,
    ready: PreparedAccount,
    prices: Prices,
    *,
    in_flight: Sequence[Order] = (),
    replaces_order_id: str | None = None,
    fees: Decimal = _ZERO,
) -> Facts:
    """:func:`~gatekeeper.core.facts.account_facts` on a prepared snapshot (``prices`` must
    be built on ``ready.held`` and ``ready.mids``)."""
    snapshot = ready.snapshot
    valuer = Valuer(snapshot, prices, held=ready.held)
    working = [
        w
        for w in snapshot.working_orders
        if replaces_order_id is None or w.order_id != replaces_order_id
    ]
    book = Book.over(ready.long, ready.short)
    for order in (*(w.order for w in working), *in_flight):
        book.split(order)
    closes_only = all(split.is_verified_close for split in split_request(orders, book))
    worlds = request_worlds(orders)
    filled = [valuer.filled(world) for world in worlds]
    touched = list(dict.fromkeys(g for f in filled for g in by_group(f)))
    pending = pending_worlds(working, in_flight)
    pending_filled = [[valuer.filled(world) for world in alts] for alts in pending]

    new_entries = [e for alts in pending_filled for w in alts for e in w]
    new_entries += [e for f in filled for e in f]
    grown: dict[str, set[Decimal]] = {}
    for group, entries in by_group(new_entries).items():
        found = strikes_of(e for e in entries if isinstance(e, Holding))
        held = ready.strikes.get(group, frozenset())
        if group not in ready.groups or not found <= held:
            grown[group] = set(held) | found
    groups = _Groups(ready, prices, grown)
    pending_debits = _choose_pending(groups, pending, pending_filled, valuer)
    # the base's groups in the general path's order; only changed ones are valued again
    before: dict[str, GroupRisk | None] = dict(ready.risks)
    changed = sorted(
        (g for g in {*groups.extra, *grown} if g in ready.order), key=ready.order.__getitem__
    )
    for group in changed:
        before[group] = groups.risk(group)
    for group in groups.extra:
        if group not in ready.order:
            before[group] = groups.risk(group)
    exposure_before = _sum_changed(ready, before, changed, groups, skip=set())

    def outcome(world: World, added: list[Entry]) -> Outcome:
        mine = by_group(added)
        risks = {
            g: groups.risk(g, mine.get(g, ()))
            if g in mine or g in before
            else GroupRisk(g, _ZERO, False)
            for g in touched
        }
        if risks.keys().isdisjoint(before):
            untouched = exposure_before
        else:
            untouched = _sum_changed(ready, before, changed, groups, skip=set(risks))
        debit = valuer.debits(world)
        debit = None if debit is None else debit + fees
        buyback = _buyback(ready, groups, added)
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


def _choose_pending(
    groups: _Groups,
    pending: list[tuple[World, ...]],
    filled: list[list[list[Entry]]],
    valuer: Valuer,
) -> Decimal | None:
    """Pending orders as filled (a complex order's riskiest world) into ``groups``, and the
    pending debits (each complex order's largest), as the general path chooses them."""
    for worlds in filled:
        if len(worlds) == 1:
            groups.add(worlds[0])
    for worlds in filled:
        if len(worlds) > 1:
            groups.add(max(worlds, key=lambda w: _risk_with(groups, w)))
    total: Decimal | None = _ZERO
    for alternatives in pending:
        largest = largest_of([valuer.debits(world) for world in alternatives])
        total = None if total is None or largest is None else total + largest
    return total


def _risk_with(groups: _Groups, world: Iterable[Entry]) -> Decimal:
    total = _ZERO
    for g, entries in by_group(world).items():
        risk = groups.risk(g, entries)
        total += _INFINITY if risk is None else risk.risk
    return total


def _sum_changed(
    ready: PreparedAccount,
    before: dict[str, GroupRisk | None],
    changed: list[str],
    groups: _Groups,
    *,
    skip: set[str],
) -> Decimal | None:
    """The general path's ``_total`` over ``before`` less the ``skip`` groups: from the
    prepared exposure and the few groups that differ, else (not shown exact) by the loop."""
    new = [g for g in groups.extra if g not in ready.order]
    if not changed and not new and not skip:
        return ready.exposure.value
    removed = [ready.risks[g].risk for g in {*changed, *skip} if g in ready.order]
    added: list[Decimal] = []
    for group in (*changed, *new):
        if group in skip:
            continue
        risk = before[group]
        if risk is None:
            return None
        added.append(risk.risk)
    found = ready.exposure.changed(removed, added)
    if found is not None:
        return found
    return total_of(r for g, r in before.items() if g not in skip)


def _buyback(ready: PreparedAccount, groups: _Groups, added: list[Entry]) -> Decimal | None:
    """The general path's ``_buyback``: held shorts still short after the orders, at mark;
    only the shorts that pending orders or this world trade are costed again."""
    pending = [e for entries in groups.extra.values() for e in entries]
    if any(isinstance(e, str) for e in (*pending, *added)):
        return None
    moved: dict[str, Decimal] = {}
    for entry in (*pending, *added):
        assert isinstance(entry, Holding)  # noqa: S101 - strings returned above
        symbol = entry.instrument.symbol
        if symbol in ready.shorts:
            moved[symbol] = moved.get(symbol, ready.netted[symbol]) + entry.quantity
    if not moved:
        return ready.buyback.value
    costs: dict[str, Decimal] = {}
    for symbol, remaining in moved.items():
        held = ready.shorts[symbol].holding
        still_short = min(-held.quantity, max(-remaining, _ZERO))
        costs[symbol] = still_short * held.instrument.multiplier * held.mark
    found = ready.buyback.changed([ready.shorts[s].cost for s in costs], list(costs.values()))
    if found is not None:
        return found
    total = _ZERO
    for symbol, term in ready.shorts.items():
        total += costs.get(symbol, term.cost)
    return total


def _net(holdings: Iterable[Holding]) -> list[Holding]:
    merged: dict[str, Holding] = {}
    for h in holdings:
        seen = merged.get(h.instrument.symbol)
        merged[h.instrument.symbol] = (
            h if seen is None else Holding(h.instrument, seen.quantity + h.quantity, h.mark)
        )
    return list(merged.values())
