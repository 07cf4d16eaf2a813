"""The risk rules. Each returns its violations (empty when the rule holds).

Comparisons use exact Decimals (cross-multiplied, never divided and rounded); messages show
percentages of NLV rounded half-up to 2 places. ``inputs`` hold exact decimal strings.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

from gatekeeper.core.assess import Assessment
from gatekeeper.core.codes import Code
from gatekeeper.core.decision import HUNDRED, Violation, money, percent
from gatekeeper.core.snapshot import AccountSnapshot, Limits, StopMode

_ZERO = Decimal(0)


def pct(amount: Decimal, nlv: Decimal) -> Decimal:
    """``amount`` as an exact percentage of ``nlv`` (which must be positive)."""
    return amount * HUNDRED / nlv


def day_pnl_pct(snapshot: AccountSnapshot) -> Decimal | None:
    """(NLV - start-of-day NLV) / start-of-day NLV in percent; ``None`` if not knowable."""
    sod = snapshot.start_of_day_nlv
    if sod is None or sod <= 0:
        return None
    return (snapshot.nlv - sod) * HUNDRED / sod


def emergency_stop(limits: Limits, verified_close: bool) -> list[Violation]:
    """An active stop rejects everything, except verified closes in ``reduce_only`` mode."""
    if not limits.emergency_stop_active:
        return []
    mode = limits.emergency_stop_mode
    if mode is StopMode.REDUCE_ONLY and verified_close:
        return []
    detail = "" if mode is StopMode.HALT else " and this order is not a verified close"
    return [
        Violation(
            Code.EMERGENCY_STOP,
            f"emergency_stop: the emergency stop is active (mode {mode.value}){detail}",
            {"mode": mode.value, "verified_close": str(verified_close).lower()},
            limits.protection_id,
        )
    ]


def daily_loss_breached(limits: Limits, snapshot: AccountSnapshot) -> bool:
    """Day P&L at or below -``max_daily_loss_percentage`` (exact comparison)."""
    sod = snapshot.start_of_day_nlv
    if sod is None or sod <= 0:
        return False
    return (snapshot.nlv - sod) * HUNDRED <= -limits.max_daily_loss_percentage * sod


def max_daily_loss(limits: Limits, snapshot: AccountSnapshot) -> list[Violation]:
    """Reject opening orders when the day's loss reached the limit (the caller checks
    ``has_opening``); the stop trigger is decided by ``evaluate()``."""
    if not daily_loss_breached(limits, snapshot):
        return []
    pnl = day_pnl_pct(snapshot)
    assert pnl is not None  # noqa: S101 - breached implies a start-of-day NLV
    sod = snapshot.start_of_day_nlv or _ZERO
    limit = limits.max_daily_loss_percentage
    return [
        Violation(
            Code.MAX_DAILY_LOSS,
            f"max_daily_loss: day P&L {percent(pnl)} (NLV {money(snapshot.nlv)} vs "
            f"start of day {money(sod)}) is at or below the -{percent(limit)} limit; "
            "trigger the emergency stop",
            {
                "nlv": str(snapshot.nlv),
                "start_of_day_nlv": str(sod),
                "day_pnl_pct": str(pnl),
                "limit_pct": str(limit),
            },
            limits.protection_id,
        )
    ]


def max_daily_trades(limits: Limits, trades_today: int, adding: int) -> list[Violation]:
    """Orders forwarded today plus this request's orders must stay within the limit."""
    cap = limits.max_daily_trades
    if cap is None or trades_today + adding <= cap:
        return []
    return [
        Violation(
            Code.MAX_DAILY_TRADES,
            f"max_daily_trades: {trades_today} of {cap} orders already forwarded today; "
            f"this request would add {adding}",
            {"trades_today": str(trades_today), "adding": str(adding), "limit": str(cap)},
            limits.protection_id,
        )
    ]


def _over(
    code: Code, what: str, amount: Decimal, limit_pct: Decimal, nlv: Decimal, pid: str
) -> Violation:
    return Violation(
        code,
        f"{code.value}: {what} {money(amount)} is {percent(pct(amount, nlv))} of NLV "
        f"{money(nlv)}, above the {percent(limit_pct)} limit",
        {
            "value": str(amount),
            "value_pct": str(pct(amount, nlv)),
            "limit": str(limit_pct * nlv / HUNDRED),
            "limit_pct": str(limit_pct),
            "nlv": str(nlv),
        },
        pid,
    )


def sizing(limits: Limits, assessment: Assessment, snapshot: AccountSnapshot) -> list[Violation]:
    """Single trade, cash reserve, exposure and concentration, for the opening part."""
    nlv = snapshot.nlv
    pid = limits.protection_id
    found: list[Violation] = []
    if nlv <= 0:
        return [
            Violation(
                Code.ACCOUNT_STATE_UNAVAILABLE,
                f"account_state_unavailable: NLV {money(nlv)} is not positive; "
                "limits in percent of NLV cannot be applied",
                {"nlv": str(nlv)},
                pid,
            )
        ]
    order = assessment.order
    if assessment.missing:
        found.append(
            Violation(
                Code.PRICE_UNAVAILABLE,
                "price_unavailable: " + "; ".join(assessment.missing),
                {"missing": "; ".join(assessment.missing)},
                pid,
            )
        )
    if order is None:
        return found
    if order.amount * HUNDRED > limits.max_single_trade_percentage * nlv:
        found.append(
            _over(
                Code.MAX_SINGLE_TRADE,
                "order value",
                order.amount,
                limits.max_single_trade_percentage,
                nlv,
                pid,
            )
        )
    working, positions = assessment.working, assessment.positions
    if working is not None:
        cash_after = snapshot.cash_balance + working.cash + order.cash
        reserve = limits.cash_reserve_percentage
        if cash_after * HUNDRED < reserve * nlv:
            found.append(
                Violation(
                    Code.CASH_RESERVE,
                    f"cash_reserve: cash after the order {money(cash_after)} is "
                    f"{percent(pct(cash_after, nlv))} of NLV {money(nlv)}, below the "
                    f"{percent(reserve)} reserve",
                    {
                        "cash_balance": str(snapshot.cash_balance),
                        "order_cash_impact": str(order.cash),
                        "working_cash_impact": str(working.cash),
                        "cash_after": str(cash_after),
                        "cash_after_pct": str(pct(cash_after, nlv)),
                        "reserve": str(reserve * nlv / HUNDRED),
                        "reserve_pct": str(reserve),
                        "nlv": str(nlv),
                    },
                    pid,
                )
            )
    if working is None or positions is None:
        return found
    exposure = positions.amount + working.amount + order.amount
    if exposure * HUNDRED > limits.max_portfolio_exposure_percentage * nlv:
        found.append(
            _over(
                Code.MAX_PORTFOLIO_EXPOSURE,
                "exposure after the order",
                exposure,
                limits.max_portfolio_exposure_percentage,
                nlv,
                pid,
            )
        )
    cap = limits.max_position_concentration_percentage
    if cap is not None:
        held = positions + working + order
        for underlying in order.by_underlying:
            amount = held.by_underlying.get(underlying, _ZERO)
            if amount * HUNDRED > cap * nlv:
                violation = _over(
                    Code.MAX_POSITION_CONCENTRATION,
                    f"{underlying} after the order",
                    amount,
                    cap,
                    nlv,
                    pid,
                )
                inputs = {**violation.inputs, "underlying": underlying}
                found.append(replace(violation, inputs=inputs))
    return found
