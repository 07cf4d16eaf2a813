"""The order summary: symbols, actions, quantities, price and type, small and JSON-able."""

from __future__ import annotations

import json
from typing import Any

from gatekeeper.core.parse import parse_complex_order, parse_order, parse_replace
from gatekeeper.core.summary import order_summary, summary_text

SPY_CALL = "SPY   261218C00600000"
SPY_CALL_2 = "SPY   261218C00610000"


def _order(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "order-type": "Limit",
        "time-in-force": "Day",
        "price": "150.00",
        "price-effect": "Debit",
        "legs": [
            {
                "instrument-type": "Equity",
                "symbol": "AAPL",
                "action": "Buy to Open",
                "quantity": 1000,
            }
        ],
    }
    body.update(fields)
    return body


def test_a_single_order_gives_its_legs_price_and_type_as_strings() -> None:
    summary = order_summary(parse_order(_order()))

    assert summary == {
        "legs": [{"symbol": "AAPL", "action": "Buy to Open", "quantity": "1000"}],
        "price": "150.00",
        "price_effect": "Debit",
        "order_type": "Limit",
        "time_in_force": "Day",
    }
    assert json.loads(json.dumps(summary)) == summary


def test_a_spread_lists_every_leg_and_keeps_decimals_exactly() -> None:
    legs = [
        {"instrument-type": "Equity Option", "symbol": SPY_CALL, "action": "Buy to Open",
         "quantity": 2},
        {"instrument-type": "Equity Option", "symbol": SPY_CALL_2, "action": "Sell to Open",
         "quantity": "2"},
    ]  # fmt: skip
    summary = order_summary(parse_order(_order(legs=legs, price="1.05")))

    assert [leg["symbol"] for leg in summary["legs"]] == [SPY_CALL, SPY_CALL_2]
    assert [leg["action"] for leg in summary["legs"]] == ["Buy to Open", "Sell to Open"]
    assert [leg["quantity"] for leg in summary["legs"]] == ["2", "2"]
    assert summary["price"] == "1.05"


def test_a_market_order_has_no_price_and_a_stop_order_its_trigger() -> None:
    market = order_summary(parse_order(_order(**{"order-type": "Market", "price": None,
                                                 "price-effect": None})))  # fmt: skip
    stop = order_summary(
        parse_order(_order(**{"order-type": "Stop", "price": None, "price-effect": None,
                              "stop-trigger": "140.5"}))
    )  # fmt: skip

    assert market["price"] is None
    assert market["price_effect"] is None
    assert market["order_type"] == "Market"
    assert "stop_trigger" not in market
    assert stop["stop_trigger"] == "140.5"


def test_a_notional_order_carries_its_value() -> None:
    body = _order(**{"order-type": "Notional Market", "price": None, "price-effect": None,
                     "value": "500", "value-effect": "Debit"})  # fmt: skip
    body["legs"][0].pop("quantity")

    summary = order_summary(parse_order(body))

    assert summary["legs"] == [{"symbol": "AAPL", "action": "Buy to Open", "quantity": None}]
    assert (summary["value"], summary["value_effect"]) == ("500", "Debit")
    assert summary_text(summary) == "Buy to Open AAPL for 500 (Notional Market, Day)"


def test_a_complex_order_lists_every_leg_trigger_first() -> None:
    exit_leg = {"instrument-type": "Equity", "symbol": "AAPL", "action": "Sell to Close",
                "quantity": 1000}  # fmt: skip
    body = {
        "type": "OTOCO",
        "trigger-order": _order(),
        "orders": [
            _order(legs=[exit_leg], price="160.00", **{"price-effect": "Credit"}),
            _order(legs=[exit_leg], **{"order-type": "Stop", "price": None,
                                       "price-effect": None, "stop-trigger": "140"}),
        ],
    }  # fmt: skip

    summary = order_summary(parse_complex_order(body))

    assert summary["complex_type"] == "OTOCO"
    assert [leg["action"] for leg in summary["legs"]] == [
        "Buy to Open",
        "Sell to Close",
        "Sell to Close",
    ]
    assert summary["price"] == "150.00"  # the trigger's
    assert [part["order_type"] for part in summary["orders"]] == ["Limit", "Limit", "Stop"]
    assert json.loads(json.dumps(summary)) == summary


def test_a_replace_gives_only_what_it_changes() -> None:
    summary = order_summary(parse_replace({"price": "151.25", "price-effect": "Debit"}))

    assert summary == {
        "legs": [],
        "price": "151.25",
        "price_effect": "Debit",
        "order_type": None,
        "time_in_force": None,
    }


def test_the_text_form_reads_like_an_order_ticket() -> None:
    assert (
        summary_text(order_summary(parse_order(_order())))
        == "Buy to Open 1000 AAPL @ 150.00 Debit (Limit, Day)"
    )
    assert summary_text({}) == ""
