"""``since``/``until`` as operators type them (the CLI's --since and the API's since)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gatekeeper.adapters.decision_log import InvalidTimeBound, parse_time_bound

# 2026-12-04 03:00 UTC is still 2026-12-03 in New York (22:00 EST).
NOW = datetime(2026, 12, 4, 3, 0, tzinfo=UTC)


def test_today_is_the_start_of_the_trading_day_in_new_york() -> None:
    assert parse_time_bound("today", NOW) == datetime(2026, 12, 3, 5, 0, tzinfo=UTC)


def test_a_date_is_its_start_in_new_york() -> None:
    assert parse_time_bound("2026-07-01", NOW) == datetime(2026, 7, 1, 4, 0, tzinfo=UTC)


def test_a_duration_counts_back_from_now() -> None:
    assert parse_time_bound("15m", NOW) == NOW - timedelta(minutes=15)
    assert parse_time_bound("2h", NOW) == NOW - timedelta(hours=2)
    assert parse_time_bound("7d", NOW) == NOW - timedelta(days=7)


def test_an_iso_time_needs_its_offset() -> None:
    assert parse_time_bound("2026-12-04T14:30:00Z", NOW) == datetime(
        2026, 12, 4, 14, 30, tzinfo=UTC
    )
    with pytest.raises(InvalidTimeBound, match="offset"):
        parse_time_bound("2026-12-04T14:30:00", NOW)


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01", "5 minutes", "", "-1h"])
def test_anything_else_is_refused_with_the_accepted_forms(text: str) -> None:
    with pytest.raises(InvalidTimeBound):
        parse_time_bound(text, NOW)
