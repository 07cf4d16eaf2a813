"""The console's pure parts: the decision filters a query string may carry, and how figures
are written on the pages."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from gatekeeper.console.decision_list import Filters, InvalidFilter
from gatekeeper.console.render import NOTHING, money, ny_time, pct, share


def test_filters_read_and_written_back() -> None:
    filters = Filters.of(
        {"verdict": "reject", "code": "max_single_trade", "account": "5WT00001", "before": "42"}
    )
    assert filters == Filters("reject", "max_single_trade", "5WT00001", 42)
    assert filters.query(7) == {
        "verdict": "reject", "code": "max_single_trade", "account": "5WT00001", "before": "7",
    }  # fmt: skip
    assert Filters.of({"verdict": "", "code": "  "}) == Filters()


@pytest.mark.parametrize(
    "query",
    [
        {"verdict": "maybe"},
        {"code": "DROP TABLE"},
        {"code": "<script>"},
        {"account": "5WT/../x"},
        {"before": "-1"},
        {"before": "1" * 19},
    ],
)
def test_filters_of_the_wrong_shape_are_refused(query: dict[str, str]) -> None:
    with pytest.raises(InvalidFilter):
        Filters.of(query)


def test_figures_as_written_on_the_pages() -> None:
    assert pct("12.3456") == "12.35 %"
    assert pct(Decimal("-94")) == "-94.00 %"
    assert pct(None) == NOTHING
    assert pct("not a number") == NOTHING
    assert money("100000") == "100,000.00"
    assert money(None) == NOTHING
    assert share(0.587) == "58.7 %"
    assert share(None) == NOTHING


def test_times_are_new_york_times() -> None:
    moment = datetime(2026, 12, 4, 17, 43, 52, tzinfo=UTC)
    assert ny_time(moment) == "12:43:52"
    assert ny_time(moment, with_date=True) == "2026-12-04 12:43:52 EST"
    assert ny_time("2026-07-01T14:00:00+00:00") == "10:00:00"  # EDT in summer
    assert ny_time(None) == NOTHING
