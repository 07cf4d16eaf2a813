"""The per-account gauges show each status as published, whatever was shown before: a
decision sets only the series whose value moved, so a value that moves, goes away and comes
back, or an account forgotten and seen again, must still show as it is now."""

from __future__ import annotations

from decimal import Decimal

from gatekeeper.account_gauges import (
    AccountLimits,
    AccountStatus,
    forget_accounts,
    publish_status,
)
from gatekeeper.metrics import Metrics

D = Decimal
ACCOUNT = "5WT00001"


def shown(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, {"account": ACCOUNT, **labels})


def status(trades: int, *, limit: int | None = 10, pnl: str | None = "-1.5") -> AccountStatus:
    return AccountStatus(
        account=ACCOUNT,
        stop_active=False,
        trades_today=trades,
        limits=AccountLimits(daily_loss_pct=D(3), max_daily_trades=limit),
        day_pnl_pct=None if pnl is None else D(pnl),
    )


def test_each_status_shows_as_published() -> None:
    metrics = Metrics.create()
    publish_status(metrics, status(1))
    assert shown(metrics, "gatekeeper_trades_today") == 1
    assert shown(metrics, "gatekeeper_daily_trades_limit") == 10
    assert shown(metrics, "gatekeeper_limit_utilisation_ratio", limit="max_daily_trades") == 0.1
    publish_status(metrics, status(1))  # the same again: unchanged
    publish_status(metrics, status(2))
    assert shown(metrics, "gatekeeper_trades_today") == 2
    assert shown(metrics, "gatekeeper_limit_utilisation_ratio", limit="max_daily_trades") == 0.2
    assert shown(metrics, "gatekeeper_day_pnl_ratio") == -0.015
    # a limit switched off: its series go; switched on again: they come back
    publish_status(metrics, status(2, limit=None, pnl=None))
    assert shown(metrics, "gatekeeper_daily_trades_limit") is None
    assert shown(metrics, "gatekeeper_limit_utilisation_ratio", limit="max_daily_trades") is None
    assert shown(metrics, "gatekeeper_day_pnl_ratio") is None
    publish_status(metrics, status(2, limit=4))
    assert shown(metrics, "gatekeeper_daily_trades_limit") == 4
    assert shown(metrics, "gatekeeper_limit_utilisation_ratio", limit="max_daily_trades") == 0.5


def test_a_forgotten_account_shows_again_once_published() -> None:
    metrics = Metrics.create()
    publish_status(metrics, status(3))
    forget_accounts(metrics, keep=set())
    assert shown(metrics, "gatekeeper_trades_today") is None
    assert shown(metrics, "gatekeeper_emergency_stop_active") is None
    publish_status(metrics, status(3))  # the same figures as before it was forgotten
    assert shown(metrics, "gatekeeper_trades_today") == 3
    assert shown(metrics, "gatekeeper_emergency_stop_active") == 0
    assert shown(metrics, "gatekeeper_daily_trades_limit") == 10
