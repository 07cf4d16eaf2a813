"""``evaluate()``: one order request against the account state and every protection."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal

from gatekeeper.core import rules
from gatekeeper.core.assess import Assessment, OrderInput, assess, contained_orders
from gatekeeper.core.codes import Code
from gatekeeper.core.decision import (
    Decision,
    Figures,
    Note,
    StopTrigger,
    Verdict,
    Violation,
    money,
    percent,
)
from gatekeeper.core.order import Order
from gatekeeper.core.snapshot import AccountSnapshot, Limits, StopMode

_ZERO = Decimal(0)


def _figures(assessment: Assessment, snapshot: AccountSnapshot) -> Figures:
    nlv = snapshot.nlv
    order, working, positions = assessment.order, assessment.working, assessment.positions

    def share(amount: Decimal | None) -> Decimal | None:
        return None if amount is None or nlv <= 0 else rules.pct(amount, nlv)

    figures = Figures(nlv=nlv, cash_balance=snapshot.cash_balance)
    if order is None:
        return Figures(nlv=nlv, cash_balance=snapshot.cash_balance, day_pnl_pct=_pnl(snapshot))
    cash_after = None if working is None else snapshot.cash_balance + working.cash + order.cash
    exposure = None
    concentration: dict[str, Decimal] = {}
    if working is not None and positions is not None:
        exposure = positions.amount + working.amount + order.amount
        held = positions + working + order
        concentration = {u: held.by_underlying.get(u, _ZERO) for u in order.by_underlying}
    largest = max(concentration.items(), key=lambda item: item[1], default=None)
    return Figures(
        nlv=figures.nlv,
        cash_balance=figures.cash_balance,
        order_value=order.amount,
        order_value_pct=share(order.amount),
        cash_after=cash_after,
        cash_after_pct=share(cash_after),
        exposure_after=exposure,
        exposure_after_pct=share(exposure),
        concentration_after=concentration,
        largest_concentration_underlying=None if largest is None else largest[0],
        largest_concentration=None if largest is None else largest[1],
        largest_concentration_pct=None if largest is None else share(largest[1]),
        day_pnl_pct=_pnl(snapshot),
    )


def _pnl(snapshot: AccountSnapshot) -> Decimal | None:
    return rules.day_pnl_pct(snapshot)


def _stop_reason(limits: Limits, snapshot: AccountSnapshot) -> str:
    pnl = rules.day_pnl_pct(snapshot) or _ZERO
    return (
        f"max_daily_loss: day P&L {percent(pnl)} reached the "
        f"-{percent(limits.max_daily_loss_percentage)} limit "
        f"(NLV {money(snapshot.nlv)}, start of day {money(snapshot.start_of_day_nlv or _ZERO)})"
    )


def evaluate(
    orders: OrderInput,
    snapshot: AccountSnapshot,
    protections: Sequence[Limits],
    trades_today: int,
    now: datetime,
    *,
    dry_run: bool = False,
    in_flight: Sequence[Order] = (),
    replaces_order_id: str | None = None,
    max_state_age: timedelta | None = None,
    fees: Decimal = _ZERO,
) -> Decision:
    """Check an order request (one order, a complex order, or a replace's resulting order)
    against the snapshot and every protection of the account; any violation rejects.

    ``in_flight``: orders allowed but not yet in the snapshot (counted as working).
    ``replaces_order_id``: the working order a replace supersedes (not counted twice).
    ``fees``: estimated fees of the request (e.g. from a broker dry-run), debited from cash.
    A dry-run is checked exactly like the real request but adds no trades.
    Pure and deterministic: ``now`` is the only notion of time.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    contained = contained_orders(orders)
    assessment = assess(
        orders, snapshot, in_flight=in_flight, replaces_order_id=replaces_order_id, fees=fees
    )
    violations: list[Violation] = []
    notes: list[Note] = []
    stop_ids: list[str] = []
    stop_reason = ""
    strict = False
    closing = assessment.verified_close

    if max_state_age is not None and now - snapshot.fetched_at > max_state_age:
        age = (now - snapshot.fetched_at).total_seconds()
        violations.append(
            Violation(
                Code.STALE_ACCOUNT_STATE,
                f"stale_account_state: account state is {age:.0f}s old, "
                f"above the {max_state_age.total_seconds():.0f}s maximum",
                {"age_seconds": f"{age:.3f}", "max_seconds": str(max_state_age.total_seconds())},
            )
        )
    if not protections:
        violations.append(
            Violation(Code.NO_PROTECTION, "no_protection: the account has no protection")
        )
    if closing:
        notes.append(Note(Code.VERIFIED_CLOSE, "every leg closes held quantity"))

    for limits in protections:
        pid = limits.protection_id
        if limits.is_default:
            notes.append(
                Note(Code.DEFAULT_PROTECTION, "no protection: the configured defaults apply", pid)
            )
        stop = rules.emergency_stop(limits, closing)
        violations.extend(stop)
        if limits.emergency_stop_active and not stop:
            strict = strict or limits.emergency_stop_mode is StopMode.REDUCE_ONLY
        if not limits.emergency_stop_active and rules.daily_loss_breached(limits, snapshot):
            stop_ids.append(pid)
            stop_reason = stop_reason or _stop_reason(limits, snapshot)
            if assessment.has_opening:
                violations.extend(rules.max_daily_loss(limits, snapshot))
        if assessment.has_opening and rules.day_pnl_pct(snapshot) is None:
            violations.append(
                Violation(
                    Code.ACCOUNT_STATE_UNAVAILABLE,
                    "account_state_unavailable: no start-of-day NLV; "
                    "the daily loss limit cannot be checked",
                    {},
                    pid,
                )
            )
        violations.extend(rules.max_daily_trades(limits, trades_today, len(contained)))
        if not limits.active:
            notes.append(
                Note(
                    Code.PROTECTION_INACTIVE,
                    "protection_inactive: sizing rules skipped (the stop still applies)",
                    pid,
                )
            )
        elif assessment.has_opening:
            violations.extend(rules.sizing(limits, assessment, snapshot))

    verdict = Verdict.REJECT if violations else Verdict.ALLOW
    return Decision(
        verdict=verdict,
        violations=tuple(violations),
        notes=tuple(notes),
        figures=_figures(assessment, snapshot),
        trade_count=0 if dry_run else len(contained),
        verified_close=closing,
        strict_position_effect=strict and verdict is Verdict.ALLOW,
        trigger_stop=StopTrigger(tuple(stop_ids), stop_reason) if stop_ids else None,
        evaluated_at=now,
    )
