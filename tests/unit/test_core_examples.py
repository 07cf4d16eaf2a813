"""rules-examples.md E1-E20: the test oracle, one test per example, exact figures."""

from __future__ import annotations

from decimal import Decimal

from gatekeeper.core.codes import Code
from gatekeeper.core.evaluate import evaluate
from gatekeeper.core.snapshot import DEFAULT_LIMITS, StopMode
from tests.unit.builders import (
    NOW,
    SPY_CALL,
    account_a,
    bto,
    leg,
    order,
    protection_p,
    stc,
    working,
)

D = Decimal


def messages(decision_violations: object) -> str:
    return " | ".join(v.message for v in decision_violations)  # type: ignore[attr-defined]


def test_account_a_positions_value_to_gross_exposure_5765() -> None:
    decision = evaluate(stc("TQQQ", 1), account_a(), [protection_p()], 0, NOW)
    # a verified close adds nothing: exposure after is the book itself
    assert decision.figures.exposure_after == D("5765.00")
    assert decision.figures.order_value == D(0)


def test_e1_small_limit_buy_is_allowed_with_figures() -> None:
    decision = evaluate(bto("AAPL", 10, "150.00"), account_a(), [protection_p()], 0, NOW)

    assert decision.allowed
    assert decision.violations == ()
    f = decision.figures
    assert f.order_value == D("1500.00")
    assert f.order_value_pct == D("1.5")
    assert f.cash_after == D("58500.00")
    assert f.cash_after_pct == D("58.5")
    assert f.exposure_after == D("7265.00")
    assert f.exposure_after_pct == D("7.265")
    assert f.concentration_after == {"AAPL": D("1500.00")}
    assert f.largest_concentration_pct == D("1.5")
    assert decision.trade_count == 1


def test_e2_seed_step4_order_breaks_four_rules() -> None:
    p = protection_p(
        cash_reserve_percentage=D(30),
        max_single_trade_percentage=D(5),
        max_daily_loss_percentage=D(3),
    )

    decision = evaluate(bto("AAPL", 1000, "150.00"), account_a(), [p], 0, NOW)

    assert not decision.allowed
    assert decision.codes == (
        Code.MAX_SINGLE_TRADE,
        Code.CASH_RESERVE,
        Code.MAX_PORTFOLIO_EXPOSURE,
        Code.MAX_POSITION_CONCENTRATION,
    )
    text = messages(decision.violations)
    assert (
        "max_single_trade: order value 150,000.00 is 150.00% of NLV 100,000.00, "
        "above the 5.00% limit" in text
    )
    assert "cash after the order -90,000.00 is -90.00% of NLV 100,000.00, below the 30.00%" in text
    assert "exposure after the order 155,765.00 is 155.77%" in text
    assert "AAPL after the order 150,000.00 is 150.00% of NLV 100,000.00, above the 20.00%" in text
    single = decision.violations[0].inputs
    assert single["value"] == "150000.00"
    assert D(single["limit"]) == D("5000")
    assert single["nlv"] == "100000.00"
    assert decision.figures.cash_after == D("-90000.00")
    assert decision.figures.exposure_after_pct == D("155.765")


def test_e3_option_buy_uses_multiplier_100() -> None:
    o = order(leg(SPY_CALL, 5, "Buy to Open", "Equity Option"), price="4.20")

    decision = evaluate(o, account_a(), [protection_p()], 0, NOW)

    assert decision.allowed
    assert decision.figures.order_value == D("2100.00")
    assert decision.figures.order_value_pct == D("2.1")
    assert decision.figures.concentration_after == {"SPY": D("2930.00")}
    assert decision.figures.largest_concentration_pct == D("2.93")


def test_e4_verified_close_skips_sizing_rules() -> None:
    decision = evaluate(stc("TQQQ", 100), account_a(), [protection_p()], 0, NOW)

    assert decision.allowed
    assert decision.verified_close
    assert Code.VERIFIED_CLOSE in decision.note_codes
    assert decision.figures.order_value == D(0)
    assert decision.trade_count == 1


def test_e5_close_beyond_holding_opens_the_excess_at_bid() -> None:
    decision = evaluate(stc("TQQQ", 150), account_a(), [protection_p()], 0, NOW)

    assert decision.allowed
    assert not decision.verified_close
    assert decision.figures.order_value == D("2465.00")
    assert decision.figures.order_value_pct == D("2.465")  # 2.47 % half-up in messages


def test_e6_market_buy_valued_at_ask() -> None:
    decision = evaluate(bto("AAPL", 100), account_a(), [protection_p()], 0, NOW)

    assert not decision.allowed
    assert decision.codes == (Code.MAX_SINGLE_TRADE,)
    assert decision.figures.order_value == D("15010.00")
    assert "order value 15,010.00 is 15.01% of NLV 100,000.00, above the 10.00% limit" in (
        decision.violations[0].message
    )


def test_e7_no_quote_is_price_unavailable() -> None:
    quotes = {k: v for k, v in account_a().quotes.items() if k != "AAPL"}

    decision = evaluate(bto("AAPL", 100), account_a(quotes=quotes), [protection_p()], 0, NOW)

    assert not decision.allowed
    assert decision.codes == (Code.PRICE_UNAVAILABLE,)
    assert "AAPL" in decision.violations[0].message
    assert decision.figures.order_value is None


def test_e8_daily_loss_breach_rejects_and_triggers_the_stop() -> None:
    decision = evaluate(
        bto("AAPL", 1, "150.00"), account_a(nlv=D("94800.00")), [protection_p()], 0, NOW
    )

    assert not decision.allowed
    assert decision.codes == (Code.MAX_DAILY_LOSS,)
    assert decision.figures.day_pnl_pct == D("-5.2")
    assert "day P&L -5.20%" in decision.violations[0].message
    assert "-5.00% limit" in decision.violations[0].message
    assert "trigger the emergency stop" in decision.violations[0].message
    assert decision.trigger_stop is not None
    assert decision.trigger_stop.protection_ids == ("P",)
    assert decision.trigger_stop.actor == "system"
    assert "-5.20%" in decision.trigger_stop.reason
    assert "5.00%" in decision.trigger_stop.reason


def test_e9_halt_rejects_even_a_verified_close() -> None:
    snapshot = account_a(nlv=D("94800.00"))
    p = protection_p(emergency_stop_active=True, emergency_stop_mode=StopMode.HALT)

    decision = evaluate(stc("TQQQ", 100), snapshot, [p], 0, NOW)

    assert not decision.allowed
    assert decision.codes == (Code.EMERGENCY_STOP,)
    assert decision.trigger_stop is None  # already active
    assert not decision.strict_position_effect


def test_e10_reduce_only_lets_a_verified_close_through_with_strict_validation() -> None:
    snapshot = account_a(nlv=D("94800.00"))
    p = protection_p(emergency_stop_active=True, emergency_stop_mode=StopMode.REDUCE_ONLY)

    decision = evaluate(stc("TQQQ", 100), snapshot, [p], 0, NOW)

    assert decision.allowed
    assert decision.verified_close
    assert decision.strict_position_effect


def test_e11_reduce_only_rejects_a_close_larger_than_the_holding() -> None:
    snapshot = account_a(nlv=D("94800.00"))
    p = protection_p(emergency_stop_active=True, emergency_stop_mode=StopMode.REDUCE_ONLY)

    decision = evaluate(stc("TQQQ", 150), snapshot, [p], 0, NOW)

    assert not decision.allowed
    assert decision.codes == (Code.EMERGENCY_STOP,)
    assert "not a verified close" in decision.violations[0].message
    assert not decision.strict_position_effect


def test_e12_daily_trade_count_reached() -> None:
    decision = evaluate(bto("AAPL", 1, "150.00"), account_a(), [protection_p()], 50, NOW)

    assert not decision.allowed
    assert decision.codes == (Code.MAX_DAILY_TRADES,)
    assert "50 of 50" in decision.violations[0].message


def test_e13_working_order_counts_toward_concentration() -> None:
    snapshot = account_a(working_orders=(working(bto("AAPL", 100, "150.00")),))

    decision = evaluate(bto("AAPL", 40, "150.00"), snapshot, [protection_p()], 0, NOW)

    assert not decision.allowed
    assert decision.codes == (Code.MAX_POSITION_CONCENTRATION,)
    assert decision.figures.concentration_after == {"AAPL": D("21000.00")}
    assert decision.figures.largest_concentration_pct == D("21")
    assert decision.figures.cash_after == D("39000.00")
    assert decision.figures.cash_after_pct == D("39")
    assert "AAPL after the order 21,000.00 is 21.00%" in decision.violations[0].message


def test_e14_cash_reserve_only() -> None:
    snapshot = account_a(cash_balance=D("30000.00"))
    p = protection_p(max_single_trade_percentage=D(20), max_portfolio_exposure_percentage=D(85))

    decision = evaluate(bto("SPY", 36, "500.00"), snapshot, [p], 0, NOW)

    assert not decision.allowed
    assert decision.codes == (Code.CASH_RESERVE,)
    assert decision.figures.order_value == D("18000.00")
    assert decision.figures.order_value_pct == D("18")
    assert decision.figures.cash_after == D("12000.00")
    assert decision.figures.cash_after_pct == D("12")
    assert "12,000.00 is 12.00% of NLV 100,000.00, below the 25.00% reserve" in (
        decision.violations[0].message
    )


def test_e15_debit_spread_valued_at_its_debit() -> None:
    o = order(
        leg("QQQ   260116C00520000", 3, "Buy to Open", "Equity Option"),
        leg("QQQ   260116C00530000", 3, "Sell to Open", "Equity Option"),
        price="2.15",
    )

    decision = evaluate(o, account_a(), [protection_p()], 0, NOW)

    assert decision.allowed
    assert decision.figures.order_value == D("645.00")
    assert decision.figures.order_value_pct == D("0.645")
    assert decision.figures.cash_after == D("59355.00")


def test_e16_credit_spread_valued_at_max_loss() -> None:
    o = order(
        leg("SPY   261218P00480000", 2, "Sell to Open", "Equity Option"),
        leg("SPY   261218P00470000", 2, "Buy to Open", "Equity Option"),
        price="1.80",
        effect="Credit",
    )

    decision = evaluate(o, account_a(), [protection_p()], 0, NOW)

    assert decision.allowed
    assert decision.figures.order_value == D("1640.00")
    assert decision.figures.order_value_pct == D("1.64")
    assert decision.figures.cash_after == D("60000.00") - D("1640.00")


def test_e17_uncovered_short_put_valued_at_strike_notional() -> None:
    o = order(
        leg("SPY   261218P00480000", 1, "Sell to Open", "Equity Option"),
        price="3.00",
        effect="Credit",
    )

    decision = evaluate(o, account_a(), [protection_p()], 0, NOW)

    assert not decision.allowed
    assert decision.codes == (Code.MAX_SINGLE_TRADE, Code.MAX_POSITION_CONCENTRATION)
    assert decision.figures.order_value == D("48000.000")
    assert decision.figures.concentration_after == {"SPY": D("48830.000")}
    assert "order value 48,000.00 is 48.00%" in decision.violations[0].message
    assert "SPY after the order 48,830.00 is 48.83%" in decision.violations[1].message


def test_e18_inactive_protection_allows_and_records_why() -> None:
    p = protection_p(
        active=False,
        cash_reserve_percentage=D(30),
        max_single_trade_percentage=D(5),
        max_daily_loss_percentage=D(3),
    )

    decision = evaluate(bto("AAPL", 1000, "150.00"), account_a(), [p], 0, NOW)

    assert decision.allowed
    assert decision.note_codes == (Code.PROTECTION_INACTIVE,)
    assert decision.figures.order_value == D("150000.00")


def test_e19_inactive_protection_still_honours_the_stop() -> None:
    p = protection_p(active=False, emergency_stop_active=True)

    decision = evaluate(bto("AAPL", 1, "150.00"), account_a(), [p], 0, NOW)

    assert not decision.allowed
    assert decision.codes == (Code.EMERGENCY_STOP,)


def test_e20_unprotected_account_is_guarded_by_the_defaults() -> None:
    snapshot = account_a(account_number="5WZ99999")

    decision = evaluate(bto("AAPL", 100), snapshot, [DEFAULT_LIMITS], 0, NOW)

    assert not decision.allowed
    assert decision.codes == (Code.MAX_SINGLE_TRADE,)
    assert Code.DEFAULT_PROTECTION in decision.note_codes
    assert "15.01% of NLV 100,000.00, above the 10.00% limit" in decision.violations[0].message


def test_e20_no_protection_at_all_rejects() -> None:
    decision = evaluate(bto("AAPL", 1, "150.00"), account_a(), [], 0, NOW)

    assert not decision.allowed
    assert decision.codes == (Code.NO_PROTECTION,)
