"""Which working orders an emergency stop cancels: every one that is not risk-reducing.

Each working order is judged as if it were a new order against the account without it
(:func:`gatekeeper.core.evaluate.evaluate` with the order as the one it replaces), so "risk-
reducing" means exactly what it means for an order under a ``reduce_only`` stop
(``shared/risk-model.md`` section 4). Whatever cannot be judged (a price missing, an order
not understood) is cancelled: keeping an order needs a reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from gatekeeper.core.evaluate import EvaluationContext, evaluate
from gatekeeper.core.snapshot import AccountSnapshot, RiskParameters, WorkingOrder


class CancelAction(StrEnum):
    """What the stop does with one working order."""

    CANCEL = "cancel"
    KEEP = "keep"  # risk-reducing: it can only make the account safer
    CANNOT = "cannot"  # no broker id to cancel it by


@dataclass(frozen=True, slots=True)
class CancelPlan:
    """One working order and what to do with it."""

    order_id: str | None
    action: CancelAction
    reason: str


def is_risk_reducing(
    working: WorkingOrder, snapshot: AccountSnapshot, params: RiskParameters, now: datetime
) -> bool:
    """Whether ``working`` is risk-reducing against the account without it."""
    context = EvaluationContext(
        snapshot=snapshot,
        protections=(),
        now=now,
        dry_run=True,
        replaces_order_id=working.order_id,
        params=params,
    )
    return evaluate(working.order, context).risk_reducing


def plan_cancels(
    snapshot: AccountSnapshot, params: RiskParameters, now: datetime
) -> tuple[CancelPlan, ...]:
    """For every working order of ``snapshot``: cancel it, keep it (risk-reducing), or say
    it cannot be cancelled (no id). Orders are judged one by one, each against the account
    with the others still working."""
    plans: list[CancelPlan] = []
    for working in snapshot.working_orders:
        if working.order_id is None:
            plans.append(CancelPlan(None, CancelAction.CANNOT, "the order has no id"))
        elif is_risk_reducing(working, snapshot, params, now):
            plans.append(
                CancelPlan(working.order_id, CancelAction.KEEP, "risk-reducing: kept working")
            )
        else:
            plans.append(CancelPlan(working.order_id, CancelAction.CANCEL, "not risk-reducing"))
    return tuple(plans)
