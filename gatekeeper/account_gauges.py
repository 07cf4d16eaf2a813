"""The per-account gauges: emergency stop, trades today and their limit, day P&L, and how much
of each limit is in use. Set from each order-path decision (:func:`publish_decision`) and by
the status job from Postgres (:func:`publish_status`, gatekeeper.status_job), so a stop from
the CLI or another replica shows too.

Series exist only for accounts with a protection row (their number bounds the labels); an
account guarded only by the configured defaults gets them once the system's protection holds
a stop for it. Utilisation is that of the account once its last counted order today fills
(the figures of the last allowed, counted decision: a rejected order's "after" figures are a
state that never exists); day P&L is that of the last decision of any verdict today.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from prometheus_client import Gauge

from gatekeeper.core import Limits
from gatekeeper.metrics import Metrics
from gatekeeper.orderpath.decided import Result

_HUNDRED = Decimal(100)
FIGURE_NAMES = ("day_pnl_pct", "cash_after_pct", "exposure_after_pct", "largest_concentration_pct")
Figures = Mapping[str, Decimal | None]


@dataclass(frozen=True, slots=True)
class AccountLimits:
    """The tightest limits of an account's active protections (``None``: none active)."""

    exposure_pct: Decimal | None = None
    concentration_pct: Decimal | None = None
    cash_reserve_pct: Decimal | None = None
    daily_loss_pct: Decimal | None = None
    max_daily_trades: int | None = None


@dataclass(frozen=True, slots=True)
class AccountStatus:
    """What the gauges show for one account.

    ``usage_figures``: of the last allowed, counted decision today (``None``: none today);
    ``day_pnl_pct``: of the last decision today."""

    account: str
    stop_active: bool
    trades_today: int
    limits: AccountLimits
    day_pnl_pct: Decimal | None = None
    usage_figures: Figures | None = None


def tightest(limits: Iterable[Limits]) -> AccountLimits:
    """The tightest of the active protections' limits (the largest cash reserve)."""
    active = [item for item in limits if item.active]
    if not active:
        return AccountLimits()
    concentration = [item.max_position_concentration_percentage for item in active]
    trades = [item.max_daily_trades for item in active]
    return AccountLimits(
        exposure_pct=min(item.max_portfolio_exposure_percentage for item in active),
        # None: that rule is off for the protection
        concentration_pct=min((c for c in concentration if c is not None), default=None),
        cash_reserve_pct=max(item.cash_reserve_percentage for item in active),
        daily_loss_pct=min(item.max_daily_loss_percentage for item in active),
        max_daily_trades=min((t for t in trades if t is not None), default=None),
    )


def _ratio(numerator: Decimal | None, denominator: Decimal | None) -> float | None:
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return float(numerator / denominator)


def utilisation(status: AccountStatus) -> dict[str, float | None]:
    """Each limit's share in use: 1 means at the limit, above 1 beyond it.

    Cash reserve: the share of the spendable cash (NLV above the reserve) committed, i.e.
    ``(100 - cash_after%) / (100 - reserve%)``."""
    limits, figures = status.limits, status.usage_figures or {}
    cash_after = figures.get("cash_after_pct")
    reserve = limits.cash_reserve_pct
    loss = None if status.day_pnl_pct is None else max(-status.day_pnl_pct, Decimal(0))
    trades = None if limits.max_daily_trades is None else Decimal(status.trades_today)
    daily_limit = None if limits.max_daily_trades is None else Decimal(limits.max_daily_trades)
    usage: dict[str, float | None] = {
        "max_daily_loss": _ratio(loss, limits.daily_loss_pct),
        "max_daily_trades": _ratio(trades, daily_limit),
    }
    if status.usage_figures is not None:
        usage["max_portfolio_exposure"] = _ratio(
            figures.get("exposure_after_pct"), limits.exposure_pct
        )
        usage["max_position_concentration"] = _ratio(
            figures.get("largest_concentration_pct"), limits.concentration_pct
        )
        usage["cash_reserve"] = _ratio(
            None if cash_after is None else _HUNDRED - cash_after,
            None if reserve is None else _HUNDRED - reserve,
        )
    return usage


def _set(metrics: Metrics, gauge: Gauge, labels: tuple[str, ...], value: float | None) -> None:
    """Show ``value`` on the series (None: no series), unless it shows it already."""
    shown = metrics.account_series
    key = (gauge, labels)
    known = shown.get(key)
    if value is None:
        if known is not None:
            del shown[key]
            with contextlib.suppress(KeyError):
                gauge.remove(*labels)
    elif known is None:
        series = gauge.labels(*labels)
        series.set(value)
        shown[key] = (value, series)
    elif known[0] != value:
        known[1].set(value)
        shown[key] = (value, known[1])


LIMIT_LABELS = (
    "max_portfolio_exposure",
    "max_position_concentration",
    "cash_reserve",
    "max_daily_loss",
    "max_daily_trades",
)


# Set only from the last counted order's figures: a rejected order changes nothing in use.
_USAGE_LIMITS = ("max_portfolio_exposure", "max_position_concentration", "cash_reserve")


def publish_status(metrics: Metrics, status: AccountStatus, *, usage: bool = True) -> None:
    """Set every gauge of ``status.account`` and drop those that have no value now; with
    ``usage`` false, the exposure, concentration and cash series are left as they are."""
    account = (status.account,)
    _set(metrics, metrics.emergency_stop_active, account, 1 if status.stop_active else 0)
    _set(metrics, metrics.trades_today, account, status.trades_today)
    limits = status.limits
    _set(metrics, metrics.daily_trades_limit, account, limits.max_daily_trades)
    pnl = status.day_pnl_pct
    _set(metrics, metrics.day_pnl, account, None if pnl is None else float(pnl / _HUNDRED))
    shares = utilisation(status)
    for limit in LIMIT_LABELS:
        if usage or limit not in _USAGE_LIMITS:
            _set(metrics, metrics.limit_utilisation, (*account, limit), shares.get(limit))
    if not usage:
        return
    cash_after = (status.usage_figures or {}).get("cash_after_pct")
    headroom = (
        None
        if cash_after is None or limits.cash_reserve_pct is None
        else float((cash_after - limits.cash_reserve_pct) / _HUNDRED)
    )
    _set(metrics, metrics.cash_reserve_headroom, account, headroom)


def forget_accounts(metrics: Metrics, keep: set[str]) -> None:
    """Drop every per-account series of accounts not in ``keep`` (protections removed)."""
    gauges = (
        metrics.emergency_stop_active,
        metrics.trades_today,
        metrics.daily_trades_limit,
        metrics.day_pnl,
        metrics.limit_utilisation,
        metrics.cash_reserve_headroom,
    )
    for gauge in gauges:
        stale = {
            tuple(sample.labels.values())
            for family in gauge.collect()
            for sample in family.samples
            if sample.labels.get("account") not in keep
        }
        for labels in stale:
            _set(metrics, gauge, labels, None)
            with contextlib.suppress(KeyError):  # not set through _set: removed here
                gauge.remove(*labels)


def figures_from_text(figures: Mapping[str, object]) -> dict[str, Decimal | None]:
    """The figures of a decision row's ``detail`` (decimals as strings) that the gauges use."""
    out: dict[str, Decimal | None] = {}
    for name in FIGURE_NAMES:
        value = figures.get(name)
        try:
            out[name] = None if value is None else Decimal(str(value))
        except InvalidOperation:
            out[name] = None
    return out


def publish_decision(metrics: Metrics, account: str, result: Result) -> None:
    """Refresh the account's gauges from a decision just recorded (no I/O)."""
    protections = [item for item in result.limits if not item.is_default]
    if not protections:
        return  # guarded by the defaults: no per-account series (see the module docstring)
    decision = result.decision
    counted = decision.allowed and decision.trade_count > 0
    figures = decision.figures
    status = AccountStatus(
        account=account,
        stop_active=decision.trigger_stop is not None
        or any(item.emergency_stop_active for item in protections),
        trades_today=result.trades_today,
        limits=tightest(protections),
        day_pnl_pct=figures.day_pnl_pct,
        usage_figures={name: getattr(figures, name) for name in FIGURE_NAMES} if counted else None,
    )
    publish_status(metrics, status, usage=counted)
