"""The trading day is the America/New_York date."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from gatekeeper.core.tradingday import trading_day


@pytest.mark.parametrize(
    ("instant", "day"),
    [
        (datetime(2026, 11, 30, 4, 59, tzinfo=UTC), date(2026, 11, 29)),  # 23:59 EST
        (datetime(2026, 11, 30, 5, 0, tzinfo=UTC), date(2026, 11, 30)),
        (datetime(2026, 7, 1, 3, 59, tzinfo=UTC), date(2026, 6, 30)),  # 23:59 EDT
        (datetime(2026, 7, 1, 4, 0, tzinfo=UTC), date(2026, 7, 1)),
    ],
)
def test_trading_day_follows_new_york_including_dst(instant: datetime, day: date) -> None:
    assert trading_day(instant) == day


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        trading_day(datetime(2026, 11, 30, 12, 0))  # noqa: DTZ001 - the point of the test
