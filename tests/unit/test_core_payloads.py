"""Snapshot builders from the broker's recorded payloads."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gatekeeper.core.errors import AccountStateInvalid
from gatekeeper.core.payloads import (
    position_from_payload,
    quote_from_payload,
    snapshot_from_payloads,
    working_order_from_payload,
)
from gatekeeper.core.symbols import InstrumentType
from tests.unit.builders import NOW, leg

D = Decimal
RECORDED = Path("/work/shared/fixtures/tastytrade-recorded")


def recorded(name: str) -> Any:
    path = RECORDED / name
    if not path.exists():
        pytest.skip(f"recorded fixture {name} not available")
    return json.loads(path.read_text())


def live_order(status: str = "Live", remaining: object = 3) -> dict[str, Any]:
    return {
        "id": 901233,
        "account-number": "5WT00001",
        "order-type": "Limit",
        "time-in-force": "Day",
        "price": "2.15",
        "price-effect": "Debit",
        "status": status,
        "legs": [
            {
                **leg("QQQ   260116C00520000", 3, "Buy to Open", "Equity Option"),
                "remaining-quantity": remaining,
                "fills": [],
            }
        ],
    }


def test_recorded_positions_and_balances_build_a_snapshot() -> None:
    positions = recorded("Get_Positions.json")["data"]["items"]
    balances = recorded("Get_Account_Balance.json")["data"]

    snapshot = snapshot_from_payloads(
        account_number="5WT00001",
        balances=balances,
        positions=positions,
        live_orders=[live_order()],
        quotes=[{"symbol": "AAPL", "bid": "149.9", "ask": "150.1", "mid": "150.0"}],
        start_of_day_nlv=D(0),
        fetched_at=NOW,
    )

    aapl, tqqq = snapshot.positions
    assert (aapl.symbol, aapl.quantity, aapl.multiplier) == ("AAPL", D(1), D(1))
    assert (tqqq.symbol, tqqq.quantity, tqqq.multiplier) == ("TQQQ", D(742), D("1.0"))
    assert tqqq.close_price == D("49.39")
    assert tqqq.instrument_type is InstrumentType.EQUITY
    assert snapshot.nlv == D("0.0")
    assert snapshot.cash_balance == D("0.0")
    assert snapshot.working_orders[0].order_id == "901233"
    assert snapshot.quotes["AAPL"].mid == D("150.0")


def test_short_direction_gives_a_negative_quantity() -> None:
    item = {
        "symbol": "SPY   261218P00480000",
        "instrument-type": "Equity Option",
        "quantity": 2,
        "quantity-direction": "Short",
        "multiplier": 100,
        "mark": "3.10",
    }
    position = position_from_payload(item)
    assert position is not None
    assert position.quantity == D(-2)
    assert position.underlying_symbol == "SPY"
    assert position.mark == D("3.10")


def test_flat_position_is_skipped() -> None:
    item = {
        "symbol": "AAPL",
        "instrument-type": "Equity",
        "quantity": 0,
        "quantity-direction": "Zero",
    }
    assert position_from_payload(item) is None


@pytest.mark.parametrize(
    "item",
    [
        {"symbol": "AAPL", "instrument-type": "Equity", "quantity": 1},
        {"symbol": "AAPL", "instrument-type": "Bond", "quantity": 1, "quantity-direction": "Long"},
        {
            "symbol": "AAPL",
            "instrument-type": "Equity",
            "quantity": "x",
            "quantity-direction": "Long",
        },
        {"instrument-type": "Equity", "quantity": 1, "quantity-direction": "Long"},
    ],
)
def test_positions_not_understood_fail_closed(item: dict[str, Any]) -> None:
    with pytest.raises(AccountStateInvalid):
        position_from_payload(item)


def test_terminal_and_fully_filled_orders_are_not_working() -> None:
    assert working_order_from_payload(live_order(status="Filled")) is None
    assert working_order_from_payload(live_order(remaining=0)) is None
    partial = working_order_from_payload(live_order(remaining=1))
    assert partial is not None
    assert partial.order.legs[0].quantity == D(1)


def test_working_order_not_understood_fails_closed() -> None:
    item = live_order()
    item["order-type"] = "Trailing Stop"
    with pytest.raises(AccountStateInvalid):
        working_order_from_payload(item)


def test_quote_fields_are_optional_but_not_garbage() -> None:
    assert quote_from_payload({"symbol": "AAPL", "bid": "1.0"}).ask is None
    with pytest.raises(AccountStateInvalid):
        quote_from_payload({"symbol": "AAPL", "bid": "NaN"})


def test_balances_need_nlv_and_cash() -> None:
    with pytest.raises(AccountStateInvalid):
        snapshot_from_payloads(
            account_number="5WT00001",
            balances={"cash-balance": "1"},
            positions=[],
            live_orders=[],
            quotes=[],
            start_of_day_nlv=None,
            fetched_at=NOW,
        )


def test_non_positive_multiplier_fails_closed() -> None:
    item = {
        "symbol": "AAPL",
        "instrument-type": "Equity",
        "quantity": 1,
        "quantity-direction": "Long",
        "multiplier": "0.0",
    }
    with pytest.raises(AccountStateInvalid, match="multiplier"):
        position_from_payload(item)
