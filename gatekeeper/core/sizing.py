"""The sizing rules on risk (``shared/risk-model.md`` section 4): single trade, cash reserve,
exposure and concentration, and the helpers their messages share with the stop's.

They apply to an active protection and an order that is not risk-reducing; comparisons are
exact Decimals (cross-multiplied); messages round half-up to 2 places and name the group,
its risk and the scenario that sets it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from gatekeeper.core.codes import Code
from gatekeeper.core.decision import HUNDRED, Violation, money, percent
from gatekeeper.core.facts_record import Facts, GroupChange
from gatekeeper.core.snapshot import Limits

if TYPE_CHECKING:
    from gatekeeper.core.rules import RequestFacts

_ZERO = Decimal(0)


def pct(amount: Decimal, nlv: Decimal) -> Decimal:
    """``amount`` as an exact percentage of ``nlv`` (which must be positive)."""
    return amount * HUNDRED / nlv


def sizes(request: RequestFacts, limits: Limits) -> bool:
    """Whether the sizing rules apply: an active protection and an order that is not
    risk-reducing, on an account whose NLV is positive."""
    return limits.active and not request.facts.risk_reducing and request.facts.nlv > 0


def check_max_single_trade(request: RequestFacts, limits: Limits) -> list[Violation]:
    """Order value (the larger of its debit and its risk increase) within the limit."""
    facts = request.facts
    value = facts.order_value
    if not sizes(request, limits) or value is None:
        return []
    cap = limits.max_single_trade_percentage
    if value * HUNDRED <= cap * facts.nlv:
        return []
    detail = f"debit {money(facts.debit or _ZERO)}, risk increase "
    detail += money(_risk_increase(facts) or _ZERO)
    worst = _worst_change(facts)
    if worst is not None:
        detail += f"; {change_text(worst)}"
    return [_over(Code.MAX_SINGLE_TRADE, "order value", value, cap, facts.nlv, limits, detail)]


def check_cash_reserve(request: RequestFacts, limits: Limits) -> list[Violation]:
    """Free cash after the order (cash minus buying back every short minus pending and this
    order's debits; credits add nothing) at or above the reserve."""
    facts = request.facts
    free = facts.free_cash_after
    if not sizes(request, limits) or free is None:
        return []
    reserve = limits.cash_reserve_percentage
    if free * HUNDRED >= reserve * facts.nlv:
        return []
    buyback, pending = facts.short_buyback or _ZERO, facts.pending_debits or _ZERO
    debit = facts.debit or _ZERO
    return [
        Violation(
            Code.CASH_RESERVE,
            f"cash_reserve: free cash after the order {money(free)} is "
            f"{percent(pct(free, facts.nlv))} of NLV {money(facts.nlv)}, below the "
            f"{percent(reserve)} reserve (cash {money(facts.cash_balance)} - shorts to buy back "
            f"{money(buyback)} - working orders {money(pending)} - this order {money(debit)})",
            {
                "cash_balance": str(facts.cash_balance),
                "short_buyback": str(buyback),
                "working_debits": str(pending),
                "order_debit": str(debit),
                "cash_after": str(free),
                "cash_after_pct": str(pct(free, facts.nlv)),
                "reserve": str(reserve * facts.nlv / HUNDRED),
                "reserve_pct": str(reserve),
                "nlv": str(facts.nlv),
            },
            limits.protection_id,
        )
    ]


def check_max_portfolio_exposure(request: RequestFacts, limits: Limits) -> list[Violation]:
    """Σ Risk(group) after the order within the limit."""
    facts = request.facts
    exposure = facts.exposure_after
    if not sizes(request, limits) or exposure is None:
        return []
    cap = limits.max_portfolio_exposure_percentage
    if exposure * HUNDRED <= cap * facts.nlv:
        return []
    worst = _worst_change(facts)
    detail = "" if worst is None else change_text(worst)
    return [
        _over(
            Code.MAX_PORTFOLIO_EXPOSURE,
            "exposure after the order",
            exposure,
            cap,
            facts.nlv,
            limits,
            detail,
        )
    ]


def check_max_position_concentration(request: RequestFacts, limits: Limits) -> list[Violation]:
    """Risk(group) of every group the order touches within the limit."""
    facts = request.facts
    cap = limits.max_position_concentration_percentage
    if not sizes(request, limits) or cap is None:
        return []
    found = []
    for change in facts.groups:
        after = change.after
        if after is None or after.risk * HUNDRED <= cap * facts.nlv:
            continue
        violation = _over(
            Code.MAX_POSITION_CONCENTRATION,
            f"{change.group} risk after the order",
            after.risk,
            cap,
            facts.nlv,
            limits,
            f"worst case {after.scenario()}",
        )
        found.append(
            Violation(
                violation.code,
                violation.message,
                {**violation.inputs, "group": change.group},
                violation.protection_id,
            )
        )
    return found


def _risk_increase(facts: Facts) -> Decimal | None:
    if facts.exposure_after is None or facts.exposure_before is None:
        return None
    return facts.exposure_after - facts.exposure_before


def _worst_change(facts: Facts) -> GroupChange | None:
    priced = [c for c in facts.groups if c.after is not None]
    return max(priced, key=lambda c: c.after.risk if c.after else _ZERO, default=None)


def change_text(change: GroupChange) -> str:
    before, after = change.before, change.after
    if after is None:
        return f"{change.group} risk not priceable"
    start = "?" if before is None else money(before.risk)
    return f"{change.group} risk {start} -> {money(after.risk)}, worst case {after.scenario()}"


def _over(
    code: Code,
    what: str,
    amount: Decimal,
    limit_pct: Decimal,
    nlv: Decimal,
    limits: Limits,
    detail: str,
) -> Violation:
    suffix = f"; {detail}" if detail else ""
    return Violation(
        code,
        f"{code.value}: {what} {money(amount)} is {percent(pct(amount, nlv))} of NLV "
        f"{money(nlv)}, above the {percent(limit_pct)} limit{suffix}",
        {
            "value": str(amount),
            "value_pct": str(pct(amount, nlv)),
            "limit": str(limit_pct * nlv / HUNDRED),
            "limit_pct": str(limit_pct),
            "nlv": str(nlv),
        },
        limits.protection_id,
    )
