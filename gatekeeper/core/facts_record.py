"""The record every rule reads, :class:`Facts` (with a :class:`GroupChange` for each group
the order touches), and what the two paths that compute it share: the general path
(:func:`gatekeeper.core.facts.account_facts`) and the prepared-snapshot path
(:func:`gatekeeper.core.incremental.incremental_facts`).

Shared: the request split against a book (what the request closes), holdings keyed by
group, whether the order reduces a group's risk, one world's :class:`Outcome` (its exposure,
order value and free cash from its risks, debit and buyback), and :func:`facts_of`, which
keeps, metric by metric, the worst of the request's worlds (unknown as soon as one world's
figure is unknown). The two paths differ only in how they value the groups.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from gatekeeper.core.effect import Book, Split
from gatekeeper.core.holdings import OrderInput, World, contained_orders
from gatekeeper.core.order import Action, ComplexOrder, ComplexType, Order
from gatekeeper.core.order_checks import OrderPrice, order_prices
from gatekeeper.core.pricing import PriceProblem, Prices
from gatekeeper.core.risk import GroupRisk, Holding
from gatekeeper.core.snapshot import AccountSnapshot, TradingStatus
from gatekeeper.core.symbols import InstrumentType

_ZERO = Decimal(0)
_HUNDRED = Decimal(100)
Entry = Holding | str  # a valued holding, or the group/symbol that could not be valued


@dataclass(frozen=True, slots=True)
class GroupChange:
    """A group the order touches: its risk before and after (``None`` = not priceable)."""

    group: str
    before: GroupRisk | None
    after: GroupRisk | None

    @property
    def increase(self) -> Decimal | None:
        """How much the order adds to the group's risk (negative: it reduces it)."""
        if self.before is None or self.after is None:
            return None
        return self.after.risk - self.before.risk


@dataclass(frozen=True, slots=True)
class Facts:
    """What the rules compare; ``None`` where a price was missing (see ``problems``)."""

    nlv: Decimal
    cash_balance: Decimal
    start_of_day_nlv: Decimal | None
    closes_only: bool
    risk_reducing: bool
    debit: Decimal | None
    order_value: Decimal | None
    exposure_before: Decimal | None
    exposure_after: Decimal | None
    free_cash_after: Decimal | None
    short_buyback: Decimal | None
    pending_debits: Decimal | None
    groups: tuple[GroupChange, ...]
    problems: tuple[PriceProblem, ...]
    order_prices: tuple[OrderPrice, ...] = ()
    leg_quantities: tuple[tuple[str, InstrumentType, Decimal], ...] = ()
    trading_status: TradingStatus = field(default_factory=TradingStatus)
    net_deposits: Decimal = _ZERO  # the day's deposits - withdrawals since the start of day

    @property
    def day_pnl(self) -> Decimal | None:
        """NLV - the day's net deposits - start-of-day NLV; ``None`` if unknown."""
        sod = self.start_of_day_nlv
        return None if sod is None else self.nlv - self.net_deposits - sod

    @property
    def day_pnl_pct(self) -> Decimal | None:
        """Day P&L / start-of-day NLV in percent (deposits and withdrawals excluded);
        ``None`` if unknown."""
        sod, pnl = self.start_of_day_nlv, self.day_pnl
        if sod is None or sod <= 0 or pnl is None:
            return None
        return pnl * _HUNDRED / sod


def split_request(orders: OrderInput, book: Book) -> tuple[Split, ...]:
    """Opening and closing parts of the request's orders, after pending closes (an OCO's
    members each against the same holdings; an OTO's exits may close what its trigger opens)."""
    if not isinstance(orders, ComplexOrder):
        seq = (orders,) if isinstance(orders, Order) else tuple(orders)
        return tuple(book.split(order) for order in seq)
    splits: list[Split] = []
    if orders.trigger_order is not None:
        trigger = book.split(orders.trigger_order)
        splits.append(trigger)
        book.add_prospective(trigger)
    if orders.type in (ComplexType.OCO, ComplexType.OTOCO):
        splits.extend(book.copy().split(order) for order in orders.orders)
    else:
        splits.extend(book.split(order) for order in orders.orders)
    return tuple(splits)


def by_group(entries: Iterable[Entry]) -> dict[str, list[Entry]]:
    """Entries keyed by group, in the order met (an unvalued entry by the name it carries)."""
    groups: dict[str, list[Entry]] = {}
    for entry in entries:
        key = entry if isinstance(entry, str) else entry.instrument.group
        groups.setdefault(key, []).append(entry)
    return groups


def reduces_risk(change: GroupChange) -> bool:
    """Whether the group's risk is known before and after, no larger, and not newly unbounded."""
    before, after = change.before, change.after
    if before is None or after is None:
        return False
    return not (after.unbounded and not before.unbounded) and after.risk <= before.risk


def largest_of(values: Sequence[Decimal | None]) -> Decimal | None:
    """The largest value; ``None`` if any is unknown."""
    return None if any(v is None for v in values) else max(v for v in values if v is not None)


def smallest_of(values: Sequence[Decimal | None]) -> Decimal | None:
    """The smallest value; ``None`` if any is unknown."""
    return None if any(v is None for v in values) else min(v for v in values if v is not None)


def worst_of(risks: Sequence[GroupRisk | None]) -> GroupRisk | None:
    """The largest risk; ``None`` if any is unknown."""
    if any(r is None for r in risks):
        return None
    return max((r for r in risks if r is not None), key=lambda r: r.risk)


def total_of(risks: Iterable[GroupRisk | None]) -> Decimal | None:
    """The sum of the risks; ``None`` if any is unknown."""
    total = _ZERO
    for risk in risks:
        if risk is None:
            return None
        total += risk.risk
    return total


class Outcome:
    """One world of the request, filled on top of the account."""

    __slots__ = ("buyback", "debit", "exposure", "free_cash", "risks", "value")

    def __init__(
        self,
        risks: Mapping[str, GroupRisk | None],
        untouched: Decimal | None,
        exposure_before: Decimal | None,
        debit: Decimal | None,
        buyback: Decimal | None,
        cash_balance: Decimal,
        pending_debits: Decimal | None,
    ) -> None:
        """``risks``: the touched groups' risks after the world; ``untouched``: the other
        groups' risk; ``debit`` with fees; ``buyback``: the held shorts still short after it."""
        touched = total_of(risks.values())
        exposure = None if untouched is None or touched is None else untouched + touched
        value = None
        if debit is not None and exposure is not None and exposure_before is not None:
            value = max(debit, exposure - exposure_before)
        free = None
        if debit is not None and buyback is not None and pending_debits is not None:
            free = cash_balance - buyback - pending_debits - debit
        self.risks, self.exposure, self.debit = risks, exposure, debit
        self.value, self.buyback, self.free_cash = value, buyback, free


def facts_of(
    orders: OrderInput,
    snapshot: AccountSnapshot,
    prices: Prices,
    worlds: Sequence[World],
    outcomes: Sequence[Outcome],
    *,
    touched: Sequence[str],
    before: Mapping[str, GroupRisk | None],
    closes_only: bool,
    exposure_before: Decimal | None,
    pending_debits: Decimal | None,
) -> Facts:
    """The record of the request's worlds: each metric the worst of them (the order's own
    prices looked up last, as both paths always did)."""
    changes = tuple(
        GroupChange(
            g,
            before.get(g, GroupRisk(g, _ZERO, False)),
            worst_of([o.risks[g] for o in outcomes]),
        )
        for g in touched
    )
    only_buys_back = all(
        leg.action in (Action.BUY_TO_CLOSE, Action.BUY)
        for world in worlds
        for order in world
        for leg in order.legs
    )
    return Facts(
        nlv=snapshot.nlv,
        cash_balance=snapshot.cash_balance,
        start_of_day_nlv=snapshot.start_of_day_nlv,
        closes_only=closes_only,
        risk_reducing=closes_only and (only_buys_back or all(reduces_risk(c) for c in changes)),
        debit=largest_of([o.debit for o in outcomes]),
        order_value=largest_of([o.value for o in outcomes]),
        exposure_before=exposure_before,
        exposure_after=largest_of([o.exposure for o in outcomes]),
        free_cash_after=smallest_of([o.free_cash for o in outcomes]),
        short_buyback=largest_of([o.buyback for o in outcomes]),
        pending_debits=pending_debits,
        groups=changes,
        problems=tuple(prices.problems.values()),
        order_prices=order_prices(contained_orders(orders), prices),
        leg_quantities=tuple(
            (leg.symbol, leg.instrument_type, leg.quantity)
            for order in contained_orders(orders)
            for leg in order.legs
            if leg.quantity is not None
        ),
        trading_status=snapshot.trading_status,
        net_deposits=snapshot.day_net_deposits,
    )
