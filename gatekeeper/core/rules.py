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
from gatekeeper.core.facts_record import Facts
from gatekeeper.core.order_checks import (
    check_account_restricted,
    check_max_order_quantity,
    check_price_collar,
)
from gatekeeper.core.sizing import (
    change_text,
    check_cash_reserve,
    check_max_portfolio_exposure,
    check_max_position_concentration,
    check_max_single_trade,
    sizes,
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


def daily_loss_breached(limits: Limits, facts: Facts) -> bool:
    """Day P&L (deposits and withdrawals excluded) at or below -``max_daily_loss_percentage``
    (exact comparison)."""
    sod, pnl = facts.start_of_day_nlv, facts.day_pnl
    if sod is None or sod <= 0 or pnl is None:
        return False
    return pnl * HUNDRED <= -limits.max_daily_loss_percentage * sod


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
        detail += " (" + "; ".join(change_text(c) for c in worsened) + ")"
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
        if not sizes(request, limits):
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
