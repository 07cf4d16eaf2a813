"""The order path's parse memo (gatekeeper.core.payloads.PayloadMemo): an item is parsed once
while the very same object comes back, an equal copy is parsed anew, a failure is not kept,
and a snapshot built with it is the one built without it."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from gatekeeper.core import AccountStateInvalid
from gatekeeper.core.payloads import PayloadMemo, position_from_payload, snapshot_from_payloads


def _position(quantity: str = "10") -> dict[str, Any]:
    return {"symbol": "AAPL", "instrument-type": "Equity", "underlying-symbol": "AAPL",
            "quantity": quantity, "quantity-direction": "Long", "multiplier": 1,
            "close-price": "100.0", "average-open-price": "90.0"}  # fmt: skip


def test_the_same_object_is_parsed_once_an_equal_copy_again() -> None:
    calls: list[object] = []

    def parse(item: Any) -> Any:
        calls.append(item)
        return position_from_payload(item)

    memo = PayloadMemo()
    item = _position()
    first = memo.parsed(item, parse)
    assert memo.parsed(item, parse) is first
    copy = _position()
    assert memo.parsed(copy, parse) == first
    assert calls == [item, copy]


def test_a_payload_that_fails_is_not_kept() -> None:
    memo = PayloadMemo()
    bad = {**_position(), "quantity": "ten"}
    for _ in range(2):
        with pytest.raises(AccountStateInvalid):
            memo.parsed(bad, position_from_payload)


def test_the_memo_is_bounded() -> None:
    memo = PayloadMemo(size=3)
    items = [_position(str(n)) for n in range(1, 6)]
    for item in items:
        memo.parsed(item, position_from_payload)
    assert len(memo._items) == 3
    assert [entry[0] for entry in memo._items.values()] == items[2:]


def test_a_snapshot_built_with_the_memo_is_the_one_built_without() -> None:
    balances = {"net-liquidating-value": "100000", "cash-balance": "50000"}
    positions = [_position()]
    quotes = [{"symbol": "AAPL", "instrument-type": "Equity", "bid": "99", "ask": "101",
               "updated-at": "2026-12-04T15:00:00Z"}]  # fmt: skip
    now = datetime(2026, 12, 4, 15, 0, tzinfo=UTC)
    kwargs: dict[str, Any] = dict(account_number="5WT00001", balances=balances,
                                  positions=positions, live_orders=[], quotes=quotes,
                                  start_of_day_nlv=Decimal(100000), fetched_at=now)  # fmt: skip
    memo = PayloadMemo()
    plain = snapshot_from_payloads(**kwargs)
    assert snapshot_from_payloads(**kwargs, memo=memo) == plain
    assert snapshot_from_payloads(**kwargs, memo=memo) == plain  # from the memo this time
