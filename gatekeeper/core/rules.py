"""The risk rules: one ``check_<code>(facts, limits)`` per reason code, and the rule table.

Each check returns its violations (empty when the rule holds). Comparisons use exact Decimals
(cross-multiplied, never divided and rounded); messages show percentages of NLV rounded
half-up to 2 places and name the group, its risk and the scenario that sets it. ``inputs``
hold exact decimal strings. Risk-reducing orders (``Facts.risk_reducing``) skip the sizing
rules, pass a ``reduce_only`` stop and are never refused by the daily trade count.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from gatekeeper.core.codes import Code
from gatekeeper.core.decision import HUNDRED, Violation, money, percent
from gatekeeper.core.facts import Facts, GroupChange
from gatekeeper.core.order_checks import (
    check_account_restricted,
    check_max_order_quantity,
    check_price_collar,
)
from gatekeeper.core.snapshot import Limits, StopMode

_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What the account facts do not hold: the request itself and the day's count."""

    facts: Facts
    trades_today: int
    adding: int
    state_age_seconds: float
    max_state_age_seconds: float | None
    protected: bool


Rule = Callable[[RequestFacts, Limits], list[Violation]]
AccountRule = Callable[[RequestFacts], list[Violation]]


def pct(amount: Decimal, nlv: Decimal) -> Decimal:
    """``amount`` as an exact percentage of ``nlv`` (which must be positive)."""
    return amount * HUNDRED / nlv


def daily_loss_breached(limits: Limits, facts: Facts) -> bool:
    """Day P&L (deposits and withdrawals excluded) at or below -``max_daily_loss_percentage``
    (exact comparison)."""
    sod, pnl = facts.start_of_day_nlv, facts.day_pnl
    if sod is None or sod <= 0 or pnl is None:
        return False
    return pnl * HUNDRED <= -limits.max_daily_loss_percentage * sod


def _sizes(request: RequestFacts, limits: Limits) -> bool:
    """Whether the sizing rules apply: an active protection and an order that is not
    risk-reducing, on an account whose NLV is positive."""
    return limits.active and not request.facts.risk_reducing and request.facts.nlv > 0


# -- account rules (whatever the protections) ---------------------------------------------------


def check_stale_account_state(request: RequestFacts) -> list[Violation]:
    """The account state must be younger than the maximum age."""
    limit = request.max_state_age_seconds
    age = request.state_age_seconds
    if limit is None or age <= limit:
        return []
    return [
        Violation(
            Code.STALE_ACCOUNT_STATE,
            f"stale_account_state: account state is {age:.0f}s old, above the {limit:.0f}s maximum",
            {"age_seconds": f"{age:.3f}", "max_seconds": str(limit)},
        )
    ]


def check_no_protection(request: RequestFacts) -> list[Violation]:
    """An account must be guarded (by its own protection or the configured defaults)."""
    if request.protected:
        return []
    return [Violation(Code.NO_PROTECTION, "no_protection: the account has no protection")]


ACCOUNT_RULES: tuple[AccountRule, ...] = (
    check_stale_account_state,
    check_no_protection,
    check_account_restricted,
)


# -- protection rules, in order: the emergency stop first ---------------------------------------


def check_emergency_stop(request: RequestFacts, limits: Limits) -> list[Violation]:
    """An active stop rejects everything, except risk-reducing orders in ``reduce_only``."""
    if not limits.emergency_stop_active:
        return []
    mode = limits.emergency_stop_mode
    reducing = request.facts.risk_reducing
    if mode is StopMode.REDUCE_ONLY and reducing:
        return []
    detail = "" if mode is StopMode.HALT else " and this order is not risk-reducing"
    worsened = [c for c in request.facts.groups if c.increase is None or c.increase > 0]
    if mode is StopMode.REDUCE_ONLY and worsened:
        detail += " (" + "; ".join(_change_text(c) for c in worsened) + ")"
    return [
        Violation(
            Code.EMERGENCY_STOP,
            f"emergency_stop: the emergency stop is active (mode {mode.value}){detail}",
            {"mode": mode.value, "risk_reducing": str(reducing).lower()},
            limits.protection_id,
        )
    ]


def check_max_daily_loss(request: RequestFacts, limits: Limits) -> list[Violation]:
    """Orders that are not risk-reducing are refused once the day's loss reached the limit."""
    facts = request.facts
    if (
        facts.risk_reducing
        or limits.emergency_stop_active
        or not daily_loss_breached(limits, facts)
    ):
        return []
    pnl = facts.day_pnl_pct or _ZERO
    sod = facts.start_of_day_nlv or _ZERO
    limit = limits.max_daily_loss_percentage
    inputs = {
        "nlv": str(facts.nlv),
        "start_of_day_nlv": str(sod),
        "day_pnl_pct": str(pnl),
        "limit_pct": str(limit),
    }
    deposits = ""
    if facts.net_deposits:
        inputs["net_deposits"] = str(facts.net_deposits)
        deposits = f", net deposits today {money(facts.net_deposits)}"
    return [
        Violation(
            Code.MAX_DAILY_LOSS,
            f"max_daily_loss: day P&L {percent(pnl)} (NLV {money(facts.nlv)} vs "
            f"start of day {money(sod)}{deposits}) is at or below the -{percent(limit)} "
            "limit; trigger the emergency stop",
            inputs,
            limits.protection_id,
        )
    ]


def check_account_state_unavailable(request: RequestFacts, limits: Limits) -> list[Violation]:
    """Limits in percent of NLV need a positive NLV; the daily loss a start-of-day NLV."""
    facts = request.facts
    if facts.risk_reducing:
        return []
    if facts.day_pnl_pct is None:
        return [
            Violation(
                Code.ACCOUNT_STATE_UNAVAILABLE,
                "account_state_unavailable: no start-of-day NLV; "
                "the daily loss limit cannot be checked",
                {},
                limits.protection_id,
            )
        ]
    if limits.active and facts.nlv <= 0:
        return [
            Violation(
                Code.ACCOUNT_STATE_UNAVAILABLE,
                f"account_state_unavailable: NLV {money(facts.nlv)} is not positive; "
                "limits in percent of NLV cannot be applied",
                {"nlv": str(facts.nlv)},
                limits.protection_id,
            )
        ]
    return []


def check_max_daily_trades(request: RequestFacts, limits: Limits) -> list[Violation]:
    """Orders forwarded today plus this request's must stay within the limit; risk-reducing
    orders are counted but never refused."""
    cap = limits.max_daily_trades
    done, adding = request.trades_today, request.adding
    if cap is None or done + adding <= cap or request.facts.risk_reducing:
        return []
    return [
        Violation(
            Code.MAX_DAILY_TRADES,
            f"max_daily_trades: {done} of {cap} orders already forwarded today; "
            f"this request would add {adding}",
            {"trades_today": str(done), "adding": str(adding), "limit": str(cap)},
            limits.protection_id,
        )
    ]


def _price_check(code: Code) -> Rule:
    def check(request: RequestFacts, limits: Limits) -> list[Violation]:
        if not _sizes(request, limits):
            return []
        found = [p.text for p in request.facts.problems if p.code is code]
        if not found:
            return []
        text = "; ".join(found)
        return [Violation(code, f"{code.value}: {text}", {"symbols": text}, limits.protection_id)]

    check.__name__ = f"check_{code.value}"
    check.__doc__ = f"Every price the order's figures need is usable ({code.value})."
    return check


check_price_unavailable = _price_check(Code.PRICE_UNAVAILABLE)
check_quote_invalid = _price_check(Code.QUOTE_INVALID)


def check_max_single_trade(request: RequestFacts, limits: Limits) -> list[Violation]:
    """Order value (the larger of its debit and its risk increase) within the limit."""
    facts = request.facts
    value = facts.order_value
    if not _sizes(request, limits) or value is None:
        return []
    cap = limits.max_single_trade_percentage
    if value * HUNDRED <= cap * facts.nlv:
        return []
    detail = f"debit {money(facts.debit or _ZERO)}, risk increase "
    detail += money(_risk_increase(facts) or _ZERO)
    worst = _worst_change(facts)
    if worst is not None:
        detail += f"; {_change_text(worst)}"
    return [_over(Code.MAX_SINGLE_TRADE, "order value", value, cap, facts.nlv, limits, detail)]


def check_cash_reserve(request: RequestFacts, limits: Limits) -> list[Violation]:
    """Free cash after the order (cash minus buying back every short minus pending and this
    order's debits; credits add nothing) at or above the reserve."""
    facts = request.facts
    free = facts.free_cash_after
    if not _sizes(request, limits) or free is None:
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
    if not _sizes(request, limits) or exposure is None:
        return []
    cap = limits.max_portfolio_exposure_percentage
    if exposure * HUNDRED <= cap * facts.nlv:
        return []
    worst = _worst_change(facts)
    detail = "" if worst is None else _change_text(worst)
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
    if not _sizes(request, limits) or cap is None:
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


RULES: tuple[Rule, ...] = (
    check_emergency_stop,
    check_max_daily_loss,
    check_account_state_unavailable,
    check_max_daily_trades,
    check_price_unavailable,
    check_quote_invalid,
    check_price_collar,
    check_max_order_quantity,
    check_max_single_trade,
    check_cash_reserve,
    check_max_portfolio_exposure,
    check_max_position_concentration,
)
"""Every protection rule, in the order its violations are reported."""


# -- message helpers ----------------------------------------------------------------------------


def _risk_increase(facts: Facts) -> Decimal | None:
    if facts.exposure_after is None or facts.exposure_before is None:
        return None
    return facts.exposure_after - facts.exposure_before


def _worst_change(facts: Facts) -> GroupChange | None:
    priced = [c for c in facts.groups if c.after is not None]
    return max(priced, key=lambda c: c.after.risk if c.after else _ZERO, default=None)


def _change_text(change: GroupChange) -> str:
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
