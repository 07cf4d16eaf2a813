"""Which broker answers put their order in the cached state (gatekeeper.adapters.account_changes,
``answered_changes``, given the answer's data as UpstreamAnswer.data parses it once): only a
working order without fills; anything unreadable, none."""

from __future__ import annotations

import json
from typing import Any

import pytest
from multidict import CIMultiDict

from gatekeeper.adapters.account_changes import Change, answered_changes, apply_changes
from gatekeeper.adapters.broker import UpstreamAnswer


def _order(status: str = "Routed", fills: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    leg = {"instrument-type": "Equity", "symbol": "AAPL", "action": "Buy to Open",
           "quantity": 1, "remaining-quantity": 1, "fills": fills or []}  # fmt: skip
    return {"id": 901233, "account-number": "5WT00001", "status": status, "legs": [leg],
            "updated-at": 1767625262300}  # fmt: skip


def _answer(data: dict[str, Any]) -> bytes:
    return json.dumps({"data": data, "context": "/accounts/5WT00001/orders"}).encode()


def _changes(body: bytes) -> list[Change]:
    """As the order path gets them: the answer's data parsed once, then its changes."""
    data = UpstreamAnswer(201, "Created", CIMultiDict(), body).data
    return answered_changes(data) if data else []


@pytest.mark.parametrize("status", ["Received", "Routed", "In Flight", "Live", "Contingent"])
def test_a_working_order_is_added_to_the_state(status: str) -> None:
    changes = _changes(_answer({"order": _order(status), "warnings": []}))
    assert changes == [("Order", _order(status))]
    entry = {"balances": {}, "positions": [], "live_orders": [{"id": 1, "status": "Live"}]}
    applied = apply_changes(entry, "5WT00001", changes)
    assert [o["id"] for o in applied["live_orders"]] == [1, 901233]
    assert entry["live_orders"] == [{"id": 1, "status": "Live"}]  # not modified


@pytest.mark.parametrize(
    "order",
    [
        _order("Filled"),  # its position's change is not in the answer
        _order("Routed", fills=[{"fill-id": "f1", "quantity": 1, "fill-price": "1.0"}]),
        _order("Rejected"),
        _order("Cancelled"),
        {k: v for k, v in _order().items() if k != "id"},  # a dry-run's order has no id
    ],
)
def test_an_order_with_fills_or_not_working_is_left_to_the_next_snapshot(
    order: dict[str, Any],
) -> None:
    assert _changes(_answer({"order": order})) == []


def test_a_complex_order_counts_only_when_every_member_is_working() -> None:
    working = {"id": 7, "orders": [_order("Routed"), _order("Contingent")]}
    assert _changes(_answer({"complex-order": working})) == [("ComplexOrder", working)]
    filled = {"id": 8, "orders": [_order("Routed")], "trigger-order": _order("Filled")}
    assert _changes(_answer({"complex-order": filled})) == []


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[]",
        b'{"data": []}',
        b'{"error": {"code": "x"}}',
        b'{"data": {}}',
        b'{"data": {"order": "x"}}',
        b"\x1f\x8b\x08\x00compressed",
    ],
)
def test_an_unreadable_answer_changes_nothing(body: bytes) -> None:
    assert _changes(body) == []
