"""The record every rule reads, :class:`Facts` (with a :class:`GroupChange` for each group
the order touches), and what the two paths that compute it share: the general path
(:func:`gatekeeper.core.facts.account_facts`) and the prepared-snapshot path
(:func:`gatekeeper.core.incremental.incremental_facts`).

Shared: the request split against a book (what the request closes), holdings keyed by
group, whether the order reduces a group's risk, and the reductions that keep, metric by
metric, the worst of the request's worlds (unknown as soon as one world's figure is unknown).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from gatekeeper.core.effect import Book, Split
from gatekeeper.core.holdings import OrderInput
from gatekeeper.core.order import ComplexOrder, ComplexType, Order
from gatekeeper.core.order_checks import OrderPrice
from gatekeeper.core.pricing import PriceProblem
from gatekeeper.core.risk import GroupRisk, Holding
from gatekeeper.core.snapshot import TradingStatus
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
