"""Rules and valuation beyond the worked examples: edges, complex orders, replaces."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest

from gatekeeper.core.codes import Code
from gatekeeper.core.evaluate import evaluate
from gatekeeper.core.parse import apply_replace, parse_complex_order, parse_order, parse_replace
from gatekeeper.core.snapshot import Position, StopMode
from gatekeeper.core.symbols import InstrumentType
from tests.unit.builders import (
    NOW,
    account_a,
    bto,
    leg,
    order,
    protection_p,
    quote,
    stc,
    working,
)

D = Decimal


def test_exactly_at_the_single_trade_limit_is_allowed() -> None:
    decision = evaluate(bto("AAPL", 100, "100.00"), account_a(), [protection_p()], 0, NOW)
    assert decision.figures.order_value_pct == D(10)
    assert decision.allowed


def test_one_cent_above_the_limit_is_rejected_though_it_rounds_to_the_limit() -> None:
    decision = evaluate(bto("AAPL", 1, "10000.004"), account_a(), [protection_p()], 0, NOW)
    assert decision.codes == (Code.MAX_SINGLE_TRADE,)
    assert "10.00% of NLV" in decision.violations[0].message


def test_every_protection_applies_and_violations_name_it() -> None:
    loose = protection_p(protection_id="loose", max_single_trade_percentage=D(20))
    strict = protection_p(protection_id="strict", max_single_trade_percentage=D(1))

    decision = evaluate(bto("AAPL", 10, "150.00"), account_a(), [loose, strict], 0, NOW)

    assert not decision.allowed
    assert [(v.code, v.protection_id) for v in decision.violations] == [
        (Code.MAX_SINGLE_TRADE, "strict")
    ]


def test_dry_run_is_checked_but_counts_no_trade() -> None:
    decision = evaluate(
        bto("AAPL", 1, "150.00"), account_a(), [protection_p()], 50, NOW, dry_run=True
    )
    assert decision.codes == (Code.MAX_DAILY_TRADES,)
    assert decision.trade_count == 0


def test_otoco_counts_three_trades_and_its_bracket_closes_the_trigger() -> None:
    entry = {
        "order-type": "Limit",
        "time-in-force": "GTC",
        "price": "150",
        "price-effect": "Debit",
        "legs": [leg("AAPL", 10, "Buy to Open")],
    }
    target = {
        "order-type": "Limit",
        "time-in-force": "GTC",
        "price": "160",
        "price-effect": "Credit",
        "legs": [leg("AAPL", 10, "Sell to Close")],
    }
    stop = {
        "order-type": "Stop",
        "time-in-force": "GTC",
        "stop-trigger": "140",
        "legs": [leg("AAPL", 10, "Sell to Close")],
    }
    complex_order = parse_complex_order(
        {"type": "OTOCO", "trigger-order": entry, "orders": [target, stop]}
    )

    decision = evaluate(complex_order, account_a(), [protection_p()], 0, NOW)

    assert decision.allowed
    assert decision.trade_count == 3
    assert decision.figures.order_value == D(1500)  # the brackets close the entry: exempt


def test_complex_order_counts_against_the_daily_limit_once_per_contained_order() -> None:
    one = {
        "order-type": "Limit",
        "time-in-force": "Day",
        "price": "150",
        "price-effect": "Debit",
        "legs": [leg("AAPL", 1, "Buy to Open")],
    }
    pairs = parse_complex_order({"type": "PAIRS", "orders": [one, one]})
    assert evaluate(pairs, account_a(), [protection_p()], 48, NOW).allowed
    assert evaluate(pairs, account_a(), [protection_p()], 49, NOW).codes == (Code.MAX_DAILY_TRADES,)


def test_replace_does_not_count_the_order_it_replaces() -> None:
    original = bto("AAPL", 100, "150.00")
    snapshot = account_a(working_orders=(working(original, "555"),))
    replaced = apply_replace(original, parse_replace({"price": "151.00"}))

    p = protection_p(max_single_trade_percentage=D(20))
    decision = evaluate(replaced, snapshot, [p], 0, NOW, replaces_order_id="555")
    double = evaluate(replaced, snapshot, [p], 0, NOW)

    assert decision.allowed
    assert decision.figures.concentration_after == {"AAPL": D("15100.00")}
    assert decision.trade_count == 1
    assert double.codes == (Code.MAX_POSITION_CONCENTRATION,)


def test_in_flight_orders_count_as_working() -> None:
    decision = evaluate(
        bto("AAPL", 40, "150.00"),
        account_a(),
        [protection_p()],
        0,
        NOW,
        in_flight=[bto("AAPL", 100, "150.00")],
    )
    assert decision.codes == (Code.MAX_POSITION_CONCENTRATION,)


def test_pending_close_reduces_what_a_new_close_can_close() -> None:
    snapshot = account_a(working_orders=(working(stc("TQQQ", 60)),))
    decision = evaluate(stc("TQQQ", 100), snapshot, [protection_p()], 0, NOW)
    assert not decision.verified_close
    assert decision.figures.order_value == D("60") * D("49.30")


def test_stale_account_state_rejects_everything() -> None:
    decision = evaluate(
        stc("TQQQ", 10),
        account_a(fetched_at=NOW - timedelta(seconds=30)),
        [protection_p()],
        0,
        NOW,
        max_state_age=timedelta(seconds=5),
    )
    assert decision.codes == (Code.STALE_ACCOUNT_STATE,)


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        evaluate(bto("AAPL", 1, "1"), account_a(), [protection_p()], 0, NOW.replace(tzinfo=None))


def test_uncovered_short_call_valued_at_underlying_notional() -> None:
    o = order(
        leg("SPY   261218C00600000", 1, "Sell to Open", "Equity Option"), price="5", effect="Credit"
    )
    decision = evaluate(o, account_a(), [protection_p()], 0, NOW)
    assert decision.figures.order_value == D("50000.00")
    assert Code.MAX_SINGLE_TRADE in decision.codes


def test_short_call_without_underlying_price_is_unpriceable() -> None:
    o = order(
        leg("QQQ   260116C00520000", 1, "Sell to Open", "Equity Option"), price="5", effect="Credit"
    )
    decision = evaluate(o, account_a(), [protection_p()], 0, NOW)
    assert decision.codes == (Code.PRICE_UNAVAILABLE,)


def test_iron_condor_valued_at_its_wider_wing_minus_credit() -> None:
    o = order(
        leg("SPY   261218P00470000", 1, "Buy to Open", "Equity Option"),
        leg("SPY   261218P00480000", 1, "Sell to Open", "Equity Option"),
        leg("SPY   261218C00520000", 1, "Sell to Open", "Equity Option"),
        leg("SPY   261218C00535000", 1, "Buy to Open", "Equity Option"),
        price="2.00",
        effect="Credit",
    )
    decision = evaluate(o, account_a(), [protection_p()], 0, NOW)
    assert decision.allowed
    assert decision.figures.order_value == D("1300.00")  # 15 x 100 - 200


def test_calendar_is_not_defined_risk_its_short_leg_is_uncovered() -> None:
    o = order(
        leg("SPY   261218P00480000", 1, "Sell to Open", "Equity Option"),
        leg("SPY   270115P00480000", 1, "Buy to Open", "Equity Option"),
        price="1.00",
    )
    quotes = {
        **account_a().quotes,
        "SPY   270115P00480000": quote("SPY   270115P00480000", "9", "10"),
    }
    decision = evaluate(o, account_a(quotes=quotes), [protection_p()], 0, NOW)
    assert decision.figures.order_value == D("48000.000") + D(1000)


def test_future_needs_a_known_multiplier() -> None:
    o = order(leg("/ESZ6", 1, "Buy", "Future"))
    quotes = {**account_a().quotes, "/ESZ6": quote("/ESZ6", "6000", "6000.25")}
    unknown = evaluate(o, account_a(quotes=quotes), [protection_p()], 0, NOW)
    known = evaluate(
        o, account_a(quotes=quotes, multipliers={"/ESZ6": D(50)}), [protection_p()], 0, NOW
    )
    assert unknown.codes == (Code.PRICE_UNAVAILABLE,)
    assert "multiplier" in unknown.violations[0].message
    assert known.figures.order_value == D("300012.50")


def test_future_sell_closes_a_long_first() -> None:
    snapshot = account_a(
        positions=(Position("/ESZ6", InstrumentType.FUTURE, D(2), multiplier=D(50), mark=D(6000)),)
    )
    decision = evaluate(
        order(leg("/ESZ6", 2, "Sell", "Future")), snapshot, [protection_p()], 0, NOW
    )
    assert decision.verified_close
    assert decision.allowed


def test_position_price_falls_back_to_mark_then_close_price_else_unavailable() -> None:
    by_close = Position("XYZ", InstrumentType.EQUITY, D(10), close_price=D(7))
    no_price = Position("XYZ", InstrumentType.EQUITY, D(10), close_price=D(0))
    ok = evaluate(bto("AAPL", 1, "150"), account_a(positions=(by_close,)), [protection_p()], 0, NOW)
    bad = evaluate(
        bto("AAPL", 1, "150"), account_a(positions=(no_price,)), [protection_p()], 0, NOW
    )
    assert ok.figures.exposure_after == D(220)
    assert bad.codes == (Code.PRICE_UNAVAILABLE,)
    assert bad.figures.order_value == D(150)  # still reported


def test_existing_short_put_is_valued_at_strike_notional() -> None:
    short_put = Position(
        "SPY   261218P00480000", InstrumentType.EQUITY_OPTION, D(-1), D(100), mark=D(3)
    )
    decision = evaluate(
        bto("AAPL", 1, "150"), account_a(positions=(short_put,)), [protection_p()], 0, NOW
    )
    assert decision.figures.exposure_after == D(48150)


def test_notional_market_buy_is_valued_at_its_value() -> None:
    o = parse_order(
        {
            "order-type": "Notional Market",
            "time-in-force": "Day",
            "value": "500",
            "value-effect": "Debit",
            "legs": [{"instrument-type": "Equity", "symbol": "AAPL", "action": "Buy to Open"}],
        }
    )
    decision = evaluate(o, account_a(), [protection_p()], 0, NOW)
    assert decision.figures.order_value == D(500)
    assert decision.figures.cash_after == D(59500)


def test_buy_stop_is_valued_at_least_at_its_trigger() -> None:
    o = parse_order(
        {
            "order-type": "Stop",
            "time-in-force": "Day",
            "stop-trigger": "200",
            "legs": [leg("AAPL", 10, "Buy to Open")],
        }
    )
    assert evaluate(o, account_a(), [protection_p()], 0, NOW).figures.order_value == D(2000)


def test_daily_loss_breach_lets_closes_through_but_still_triggers_the_stop() -> None:
    decision = evaluate(stc("TQQQ", 100), account_a(nlv=D(94800)), [protection_p()], 0, NOW)
    assert decision.allowed
    assert decision.trigger_stop is not None


def test_daily_loss_just_above_the_limit_passes() -> None:
    decision = evaluate(
        bto("AAPL", 1, "150"), account_a(nlv=D("95000.01")), [protection_p()], 0, NOW
    )
    assert decision.allowed
    assert decision.trigger_stop is None


def test_missing_start_of_day_nlv_rejects_opening_orders_only() -> None:
    snapshot = account_a(start_of_day_nlv=None)
    opening = evaluate(bto("AAPL", 1, "150"), snapshot, [protection_p()], 0, NOW)
    closing = evaluate(stc("TQQQ", 1), snapshot, [protection_p()], 0, NOW)
    assert opening.codes == (Code.ACCOUNT_STATE_UNAVAILABLE,)
    assert closing.allowed


def test_non_positive_nlv_rejects_opening_orders() -> None:
    decision = evaluate(
        bto("AAPL", 1, "150"), account_a(nlv=D(0), start_of_day_nlv=D(0)), [protection_p()], 0, NOW
    )
    assert Code.ACCOUNT_STATE_UNAVAILABLE in decision.codes


def test_reduce_only_complex_order_with_an_opening_trigger_is_rejected() -> None:
    entry = {
        "order-type": "Market",
        "time-in-force": "Day",
        "legs": [leg("AAPL", 1, "Buy to Open")],
    }
    exit_ = {
        "order-type": "Market",
        "time-in-force": "Day",
        "legs": [leg("AAPL", 1, "Sell to Close")],
    }
    oto = parse_complex_order({"type": "OTO", "trigger-order": entry, "orders": [exit_]})
    p = protection_p(emergency_stop_active=True, emergency_stop_mode=StopMode.REDUCE_ONLY)
    assert evaluate(oto, account_a(), [p], 0, NOW).codes == (Code.EMERGENCY_STOP,)


def test_violation_inputs_are_exact_strings_for_the_audit_row() -> None:
    decision = evaluate(bto("AAPL", 100), account_a(), [protection_p()], 0, NOW)
    inputs = decision.violations[0].inputs
    assert inputs["value"] == "15010.00"
    assert D(inputs["value_pct"]) == D("15.01")
    assert D(inputs["limit"]) == D(10000)
    assert inputs["limit_pct"] == "10"
    assert inputs["nlv"] == "100000.00"
    assert decision.violations[0].protection_id == "P"


def test_short_sale_limit_below_the_bid_is_valued_at_the_bid() -> None:
    decision = evaluate(
        order(leg("AAPL", 100, "Sell to Open"), price="0.01", effect="Credit"),
        account_a(),
        [protection_p()],
        0,
        NOW,
    )
    assert decision.figures.order_value == D("14990.00")
    assert decision.codes == (Code.MAX_SINGLE_TRADE,)


def test_fees_are_debited_from_cash() -> None:
    decision = evaluate(
        bto("AAPL", 10, "150.00"), account_a(), [protection_p()], 0, NOW, fees=D("1.22")
    )
    assert decision.figures.cash_after == D("58498.78")


def test_decision_as_dict_is_json_ready() -> None:
    decision = evaluate(bto("AAPL", 1000, "150.00"), account_a(), [protection_p()], 0, NOW)

    data = decision.as_dict()

    json.dumps(data)
    assert data["verdict"] == "reject"
    assert data["figures"]["order_value"] == "150000.00"
    assert data["violations"][0]["code"] == "max_single_trade"
    assert decision.message.startswith("max_single_trade: order value 150,000.00")


def test_allowed_decision_message() -> None:
    decision = evaluate(bto("AAPL", 1, "150.00"), account_a(), [protection_p()], 0, NOW)
    assert decision.message == "allowed"
    assert decision.as_dict()["trigger_stop"] is None
