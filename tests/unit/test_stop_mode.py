"""The stop-mode rule (who triggers, and the protection's setting) and how a protection row reaches
the core: the core's ``emergency_stop_mode`` is the active stop's mode, never the setting."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from gatekeeper.adapters.protection_model import Protection, effective_stop_mode
from gatekeeper.core import StopMode
from gatekeeper.limits import StopMode as StopModeName
from gatekeeper.orderpath.inputs import limits_of

NOW = datetime(2025, 7, 29, 14, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("requested", "setting", "automatic", "expected"),
    [
        (None, None, True, "reduce_only"),
        (None, "halt", True, "halt"),
        (None, "reduce_only", True, "reduce_only"),
        (None, None, False, "halt"),
        (None, "halt", False, "halt"),
        (None, "reduce_only", False, "reduce_only"),
        ("reduce_only", "halt", False, "reduce_only"),
        ("halt", "reduce_only", False, "halt"),
        ("halt", None, True, "halt"),
    ],
)
def test_effective_stop_mode(
    requested: StopModeName | None,
    setting: StopModeName | None,
    automatic: bool,
    expected: StopModeName,
) -> None:
    assert effective_stop_mode(requested, setting, automatic=automatic) == expected


def row(setting: StopModeName | None, active_mode: StopModeName | None) -> Protection:
    stopped = active_mode is not None
    return Protection(
        id=7,
        user_id=1,
        account_id="5WT00001",
        cash_reserve_percentage=Decimal("25.00"),
        max_daily_loss_percentage=Decimal("5.00"),
        max_single_trade_percentage=Decimal("10.00"),
        max_portfolio_exposure_percentage=Decimal("75.00"),
        max_position_concentration_percentage=Decimal("20.00"),
        max_daily_trades=50,
        email_alerts_enabled=True,
        active=True,
        emergency_stop_mode=setting,
        emergency_stop_triggered_at=NOW if stopped else None,
        emergency_stop_triggered_by="system" if stopped else None,
        emergency_stop_reason="daily loss" if stopped else None,
        emergency_stop_active_mode=active_mode,
        price_collar_equity_percentage=Decimal("5.00"),
        price_collar_option_percentage=Decimal("25.00"),
        price_collar_option_width_multiple=Decimal("2.00"),
        price_collar_future_percentage=Decimal("2.00"),
        max_order_quantity_equity=50_000,
        max_order_quantity_equity_option=1_000,
        max_order_quantity_future=100,
        max_order_quantity_future_option=500,
        created_at=NOW,
        updated_at=NOW,
    )


@pytest.mark.parametrize(
    ("setting", "active_mode", "expected"),
    [
        (None, "reduce_only", StopMode.REDUCE_ONLY),
        ("halt", "reduce_only", StopMode.REDUCE_ONLY),  # a stop asked for reduce_only
        ("reduce_only", "halt", StopMode.HALT),
        (None, "halt", StopMode.HALT),
    ],
)
def test_the_core_sees_the_active_stops_mode(
    setting: StopModeName | None, active_mode: StopModeName, expected: StopMode
) -> None:
    limits = limits_of(row(setting, active_mode))

    assert limits.emergency_stop_active
    assert limits.emergency_stop_mode is expected


@pytest.mark.parametrize("setting", [None, "halt", "reduce_only"])
def test_without_a_stop_the_core_gets_no_stop(setting: StopModeName | None) -> None:
    limits = limits_of(row(setting, None))

    assert not limits.emergency_stop_active
    assert limits.emergency_stop_mode is StopMode.HALT  # ignored by the core while inactive
