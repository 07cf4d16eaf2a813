"""Conditional orders: an order that routes when a price crosses a threshold is judged at
today's quotes and again with that price at the threshold, and the worst figures count.

``rules.conditions`` say "route when AAPL >= 300": a market buy of AAPL then fills near 300,
not at today's 150, and a short put is sold with the underlying already at the threshold.
Each route condition gives a scenario where the condition's symbol is quoted at its
threshold (its options keep today's quotes: their own prices are not modelled).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from decimal import Decimal

from gatekeeper.core.facts_record import Facts, GroupChange
from gatekeeper.core.holdings import OrderInput, contained_orders
from gatekeeper.core.snapshot import AccountSnapshot, Quote


def scenario_snapshots(orders: OrderInput, snapshot: AccountSnapshot) -> list[AccountSnapshot]:
    """Today's snapshot, then one per route condition with its symbol at the threshold."""
    found = [snapshot]
    for order in contained_orders(orders):
        if order.rules is None:
            continue
        for condition in order.rules.route_thresholds:
            price = condition.threshold
            moved = Quote(condition.symbol, bid=price, ask=price, mid=price)
            found.append(replace(snapshot, quotes={**snapshot.quotes, condition.symbol: moved}))
    return found


def worst_facts(all_facts: Sequence[Facts]) -> Facts:
    """The facts of several scenarios as one: the largest value, exposure and group risk, the
    smallest free cash; risk-reducing only if it is in every scenario."""
    first = all_facts[0]
    if len(all_facts) == 1:
        return first
    groups = tuple(
        max((f.groups[i] for f in all_facts), key=_after_risk) for i in range(len(first.groups))
    )
    problems = {p.symbol: p for f in all_facts for p in f.problems}
    return replace(
        first,
        risk_reducing=all(f.risk_reducing for f in all_facts),
        debit=_largest([f.debit for f in all_facts]),
        order_value=_largest([f.order_value for f in all_facts]),
        exposure_before=_largest([f.exposure_before for f in all_facts]),
        exposure_after=_largest([f.exposure_after for f in all_facts]),
        free_cash_after=_smallest([f.free_cash_after for f in all_facts]),
        short_buyback=_largest([f.short_buyback for f in all_facts]),
        groups=groups,
        problems=tuple(problems.values()),
    )


def _largest(values: list[Decimal | None]) -> Decimal | None:
    return None if any(v is None for v in values) else max(v for v in values if v is not None)


def _smallest(values: list[Decimal | None]) -> Decimal | None:
    return None if any(v is None for v in values) else min(v for v in values if v is not None)


def _after_risk(change: GroupChange) -> Decimal:
    return change.after.risk if change.after is not None else Decimal("Infinity")
