"""``evaluate()``: one order request against the account state and every protection.

It computes the account facts once (:mod:`gatekeeper.core.facts`), runs the rule table
(:data:`gatekeeper.core.rules.ACCOUNT_RULES`, then :data:`~gatekeeper.core.rules.RULES` per
protection) and assembles the decision; no rule logic lives here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from gatekeeper.core import rules
from gatekeeper.core.codes import Code
from gatekeeper.core.decision import (
    Decision,
    Figures,
    GroupFigures,
    Note,
    StopTrigger,
    Verdict,
    Violation,
    money,
    percent,
)
from gatekeeper.core.facts import account_facts
from gatekeeper.core.facts_record import Facts
from gatekeeper.core.holdings import OrderInput, contained_orders
from gatekeeper.core.incremental import incremental_facts
from gatekeeper.core.order import Order
from gatekeeper.core.prepared import prepared
from gatekeeper.core.pricing import Prices
from gatekeeper.core.scenarios import scenario_snapshots, worst_facts
from gatekeeper.core.sizing import pct
from gatekeeper.core.snapshot import (
    AccountSnapshot,
    Limits,
    RiskParameters,
    StartOfDaySource,
    StopMode,
)

_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class EvaluationContext:
    """Everything ``evaluate()`` reads besides the order.

    ``in_flight``: orders allowed but not yet in the snapshot (counted as working).
    ``replaces_order_id``: the working order a replace supersedes (not counted twice).
    ``fees``: estimated fees of the request, added to its debit.
    ``now`` is the only notion of time: the core never reads the clock.
    """

    snapshot: AccountSnapshot
    protections: Sequence[Limits]
    now: datetime
    trades_today: int = 0
    dry_run: bool = False
    in_flight: Sequence[Order] = ()
    replaces_order_id: str | None = None
    max_state_age: timedelta | None = None
    fees: Decimal = _ZERO
    params: RiskParameters = field(default_factory=RiskParameters)


def evaluate(orders: OrderInput, context: EvaluationContext) -> Decision:
    """Check an order request (one order, a complex order, or a replace's resulting order)
    against the snapshot and every protection of the account; any violation rejects.
    A dry-run is checked exactly like the real request but adds no trades."""
    now, snapshot = context.now, context.snapshot
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    scenarios = scenario_snapshots(orders, snapshot)
    facts = worst_facts(
        [_facts(orders, context, scenario, cached=n == 0) for n, scenario in enumerate(scenarios)]
    )
    adding = len(contained_orders(orders))
    request = rules.RequestFacts(
        facts=facts,
        trades_today=context.trades_today,
        adding=adding,
        state_age_seconds=(now - snapshot.fetched_at).total_seconds(),
        max_state_age_seconds=None
        if context.max_state_age is None
        else context.max_state_age.total_seconds(),
        protected=bool(context.protections),
    )
    violations: list[Violation] = [v for rule in rules.ACCOUNT_RULES for v in rule(request)]
    for limits in context.protections:
        violations.extend(v for rule in rules.RULES for v in rule(request, limits))
    verdict = Verdict.REJECT if violations else Verdict.ALLOW
    strict = verdict is Verdict.ALLOW and any(
        p.emergency_stop_active and p.emergency_stop_mode is StopMode.REDUCE_ONLY
        for p in context.protections
    )
    return Decision(
        verdict=verdict,
        violations=tuple(violations),
        notes=_notes(facts, context.protections, snapshot),
        figures=figures_of(facts),
        trade_count=0 if context.dry_run else adding,
        risk_reducing=facts.risk_reducing,
        strict_position_effect=strict,
        trigger_stop=_stop_trigger(facts, context.protections),
        evaluated_at=now,
    )


def _facts(
    orders: OrderInput, context: EvaluationContext, snapshot: AccountSnapshot, *, cached: bool
) -> Facts:
    """The account facts of one scenario: on the prepared snapshot when it can be prepared
    (only today's quotes are: a route condition's scenario is judged once), else by the
    general path."""
    params, now = context.params, context.now
    ready = prepared(snapshot, params, now) if cached else None
    if ready is None:
        return account_facts(
            orders,
            snapshot,
            params,
            Prices(snapshot, params, now),
            in_flight=context.in_flight,
            replaces_order_id=context.replaces_order_id,
            fees=context.fees,
        )
    return incremental_facts(
        orders,
        ready,
        Prices(snapshot, params, now, held=ready.held, mids=ready.mids),
        in_flight=context.in_flight,
        replaces_order_id=context.replaces_order_id,
        fees=context.fees,
    )


def _notes(
    facts: Facts, protections: Sequence[Limits], snapshot: AccountSnapshot
) -> tuple[Note, ...]:
    notes: list[Note] = []
    if snapshot.start_of_day_source is StartOfDaySource.FIRST_SIGHT:
        notes.append(
            Note(
                Code.START_OF_DAY_FIRST_SIGHT,
                "start_of_day_first_sight: the broker has no beginning-of-day snapshot for"
                f" today; start of day {money(facts.start_of_day_nlv or _ZERO)} is the NLV"
                " at the day's first decision",
            )
        )
    if facts.risk_reducing:
        notes.append(
            Note(
                Code.RISK_REDUCING,
                "risk_reducing: every leg closes held quantity and no group's risk grows",
            )
        )
    for limits in protections:
        pid = limits.protection_id
        if limits.is_default:
            notes.append(
                Note(Code.DEFAULT_PROTECTION, "no protection: the configured defaults apply", pid)
            )
        if not limits.active:
            notes.append(
                Note(
                    Code.PROTECTION_INACTIVE,
                    "protection_inactive: sizing rules skipped (the stop still applies)",
                    pid,
                )
            )
    return tuple(notes)


def _stop_trigger(facts: Facts, protections: Sequence[Limits]) -> StopTrigger | None:
    """A daily-loss breach stops every protection whose stop is not active yet."""
    breached = [
        p
        for p in protections
        if not p.emergency_stop_active and rules.daily_loss_breached(p, facts)
    ]
    if not breached:
        return None
    limits = breached[0]
    reason = (
        f"max_daily_loss: day P&L {percent(facts.day_pnl_pct or _ZERO)} reached the "
        f"-{percent(limits.max_daily_loss_percentage)} limit "
        f"(NLV {money(facts.nlv)}, start of day {money(facts.start_of_day_nlv or _ZERO)}"
        + (f", net deposits today {money(facts.net_deposits)})" if facts.net_deposits else ")")
    )
    return StopTrigger(tuple(p.protection_id for p in breached), reason)


def figures_of(facts: Facts) -> Figures:
    """The decision's figures: the order, the account and every touched group."""
    nlv = facts.nlv

    def share(amount: Decimal | None) -> Decimal | None:
        return None if amount is None or nlv <= 0 else pct(amount, nlv)

    groups = {
        change.group: GroupFigures(
            risk_before=None if change.before is None else change.before.risk,
            risk_after=None if change.after is None else change.after.risk,
            unbounded=change.after is not None and change.after.unbounded,
            worst_case=None if change.after is None else change.after.scenario(),
        )
        for change in facts.groups
    }
    concentration = {g: f.risk_after for g, f in groups.items() if f.risk_after is not None}
    largest = max(concentration.items(), key=lambda item: item[1], default=None)
    return Figures(
        nlv=nlv,
        cash_balance=facts.cash_balance,
        order_value=facts.order_value,
        order_value_pct=share(facts.order_value),
        order_debit=facts.debit,
        cash_after=facts.free_cash_after,
        cash_after_pct=share(facts.free_cash_after),
        exposure_before=facts.exposure_before,
        exposure_after=facts.exposure_after,
        exposure_after_pct=share(facts.exposure_after),
        concentration_after=concentration,
        largest_concentration_underlying=None if largest is None else largest[0],
        largest_concentration=None if largest is None else largest[1],
        largest_concentration_pct=None if largest is None else share(largest[1]),
        day_pnl_pct=facts.day_pnl_pct,
        groups=groups,
    )
