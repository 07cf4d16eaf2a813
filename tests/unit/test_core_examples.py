"""rules-examples.md E1-E20: the test oracle, one test per example, exact figures.

The figures follow shared/risk-model.md (worst-case loss per underlying group), which
supersedes the leg-by-leg valuation of rules-examples.md; its section 6 says which examples
change. Where a figure differs from rules-examples.md, a comment says why.
"""

from __future__ import annotations

from decimal import Decimal

from gatekeeper.core.codes import Code
from gatekeeper.core.snapshot import DEFAULT_LIMITS, AccountSnapshot, StopMode
from tests.unit.builders import (
    SPY_CALL,
    account_a,
    bto,
    decide,
    leg,
    order,
    protection_p,
    quote,
    stc,
    with_quotes,
    working,
)

D = Decimal
OPT = "Equity Option"
QQQ520 = "QQQ   260116C00520000"
QQQ530 = "QQQ   260116C00530000"
P480 = "SPY   261218P00480000"
P470 = "SPY   261218P00470000"
P = protection_p()


def account_a_with_options() -> AccountSnapshot:
    """Account A plus the quotes (and instruments) E15-E17 need: the model marks every
    option at its own mid and each group at its underlying's mid, never at the limit.
    Mids: QQQ 520.00; QQQ 520C 7.20 and 530C 5.05 (the 2.15 debit at mid); SPY 480P 3.00
    (E17's mid) and 470P 1.20 (E16's 1.80 credit at mid)."""
    return with_quotes(
        account_a(),
        quote("QQQ", "519.90", "520.10"),
        quote(QQQ520, "7.10", "7.30"),
        quote(QQQ530, "5.00", "5.10"),
        quote(P480, "2.95", "3.05"),
        quote(P470, "1.15", "1.25"),
    )


def test_account_a_risk_is_5765_by_group() -> None:
    decision = decide(stc("TQQQ", 1), account_a(), [P])

    # Long stock and long options risk what they are worth: TQQQ 100 x 49.35 = 4,935.00,
    # SPY call 2 x 4.15 x 100 = 830.00 (its position mark: account A has no quote for it).
    assert decision.figures.exposure_before == D("5765.00")
    assert decision.figures.exposure_after == D("5715.65")  # one TQQQ share fewer
    assert decision.figures.groups["TQQQ"].risk_before == D("4935.00")
    assert decision.figures.order_value == D(0)


def test_e1_small_limit_buy_is_allowed_with_figures() -> None:
    decision = decide(bto("AAPL", 10, "150.00"), account_a(), [P])

    assert decision.allowed
    assert decision.violations == ()
    f = decision.figures
    # value = max(debit 1,500.00 at the limit, risk increase 10 x 150.00 mid = 1,500.00)
    assert f.order_value == D("1500.00")
    assert f.order_value_pct == D("1.5")
    assert f.order_debit == D("1500.00")
    assert f.cash_after == D("58500.00")
    assert f.cash_after_pct == D("58.5")
    # TQQQ 4,935 + SPY call 830 + AAPL 1,500
    assert f.exposure_before == D("5765.00")
    assert f.exposure_after == D("7265.00")
    assert f.exposure_after_pct == D("7.265")
    assert f.concentration_after == {"AAPL": D("1500.00")}
    assert f.largest_concentration_pct == D("1.5")
    assert decision.trade_count == 1
    assert not decision.risk_reducing


def test_e2_seed_step4_order_breaks_four_rules() -> None:
    p = protection_p(
        cash_reserve_percentage=D(30),
        max_single_trade_percentage=D(5),
        max_daily_loss_percentage=D(3),
    )

    decision = decide(bto("AAPL", 1000, "150.00"), account_a(), [p])

    assert not decision.allowed
    assert decision.codes == (
        Code.MAX_SINGLE_TRADE,
        Code.CASH_RESERVE,
        Code.MAX_PORTFOLIO_EXPOSURE,
        Code.MAX_POSITION_CONCENTRATION,
    )
    text = decision.message
    assert (
        "max_single_trade: order value 150,000.00 is 150.00% of NLV 100,000.00, "
        "above the 5.00% limit; debit 150,000.00, risk increase 150,000.00; "
        "AAPL risk 0.00 -> 150,000.00, worst case AAPL at 0.00"
    ) in text
    assert (
        "cash_reserve: free cash after the order -90,000.00 is -90.00% of NLV 100,000.00, "
        "below the 30.00% reserve"
    ) in text
    assert "exposure after the order 155,765.00 is 155.77% of NLV 100,000.00" in text
    assert (
        "max_position_concentration: AAPL risk after the order 150,000.00 is 150.00% of NLV "
        "100,000.00, above the 20.00% limit; worst case AAPL at 0.00"
    ) in text
    single = decision.violations[0].inputs
    assert single["value"] == "150000.00"
    assert D(single["limit"]) == D("5000")
    assert single["nlv"] == "100000.00"
    assert decision.violations[3].inputs["group"] == "AAPL"
    assert decision.figures.cash_after == D("-90000.00")
    assert decision.figures.exposure_after_pct == D("155.765")
    assert decision.figures.concentration_after == {"AAPL": D("150000.00")}


def test_e3_option_buy_pays_its_limit_and_risks_its_marks() -> None:
    o = order(leg(SPY_CALL, 5, "Buy to Open", OPT), price="4.20")

    decision = decide(o, account_a(), [P])

    assert decision.allowed
    # value = max(debit 4.20 x 5 x 100 = 2,100.00, risk increase 5 x 4.15 x 100 = 2,075.00)
    assert decision.figures.order_value == D("2100.00")
    assert decision.figures.order_value_pct == D("2.1")
    # rules-examples.md said SPY 2,930.00 (the new calls at the 4.20 limit); the limit is
    # never a reference price: 7 calls at their 4.15 mark = 2,905.00
    spy = decision.figures.groups["SPY"]
    assert (spy.risk_before, spy.risk_after) == (D("830.00"), D("2905.00"))
    assert decision.figures.concentration_after == {"SPY": D("2905.00")}
    assert decision.figures.largest_concentration_pct == D("2.905")  # 2.91 % half-up


def test_e4_close_of_held_stock_is_risk_reducing() -> None:
    decision = decide(stc("TQQQ", 100), account_a(), [P])

    assert decision.allowed
    assert decision.risk_reducing
    assert decision.note_codes == (Code.RISK_REDUCING,)
    tqqq = decision.figures.groups["TQQQ"]
    assert (tqqq.risk_before, tqqq.risk_after) == (D("4935.00"), D(0))
    # value = max(debit 0 (a sale), risk increase -4,935.00)
    assert decision.figures.order_value == D(0)
    assert decision.trade_count == 1


def test_e5_close_beyond_the_holding_is_checked_as_opening_on_its_risk() -> None:
    decision = decide(stc("TQQQ", 150), account_a(), [P])

    assert decision.allowed
    assert not decision.risk_reducing  # 150 > 100 held
    assert decision.note_codes == ()
    # rules-examples.md valued the 50 opened short at the bid: 2,465.00. Now the order's value
    # is its risk increase: long 100 (4,935.00) becomes short 50, stressed to S_hi = 2 x 49.35:
    # 50 x 49.35 = 2,467.50, a decrease of 2,467.50; value = max(debit 0, -2,467.50) = 0.
    tqqq = decision.figures.groups["TQQQ"]
    assert (tqqq.risk_before, tqqq.risk_after) == (D("4935.00"), D("2467.50"))
    assert tqqq.unbounded
    assert tqqq.worst_case == "TQQQ at 98.70 (unbounded above)"
    assert decision.figures.order_value == D(0)


def test_e6_market_buy_pays_the_ask() -> None:
    decision = decide(bto("AAPL", 100), account_a(), [P])

    assert not decision.allowed
    assert decision.codes == (Code.MAX_SINGLE_TRADE,)
    # value = max(debit at the ask 150.10 x 100 = 15,010.00, risk increase 15,000.00 at mid)
    assert decision.figures.order_value == D("15010.00")
    assert decision.figures.order_debit == D("15010.00")
    assert decision.figures.concentration_after == {"AAPL": D("15000.00")}
    assert (
        "order value 15,010.00 is 15.01% of NLV 100,000.00, above the 10.00% limit; "
        "debit 15,010.00, risk increase 15,000.00"
    ) in decision.violations[0].message


def test_e7_no_quote_is_price_unavailable() -> None:
    quotes = {k: v for k, v in account_a().quotes.items() if k != "AAPL"}

    decision = decide(bto("AAPL", 100), account_a(quotes=quotes), [P])

    assert not decision.allowed
    assert decision.codes == (Code.PRICE_UNAVAILABLE,)
    assert decision.message == "price_unavailable: AAPL: no quote"
    assert decision.figures.order_value is None
    assert decision.figures.groups["AAPL"].risk_after is None


def test_e8_daily_loss_breach_rejects_and_triggers_the_stop() -> None:
    decision = decide(bto("AAPL", 1, "150.00"), account_a(nlv=D("94800.00")), [P])

    assert not decision.allowed
    assert decision.codes == (Code.MAX_DAILY_LOSS,)
    assert decision.figures.day_pnl_pct == D("-5.2")
    assert decision.message == (
        "max_daily_loss: day P&L -5.20% (NLV 94,800.00 vs start of day 100,000.00) is at or "
        "below the -5.00% limit; trigger the emergency stop"
    )
    assert decision.trigger_stop is not None
    assert decision.trigger_stop.protection_ids == ("P",)
    assert decision.trigger_stop.actor == "system"
    assert decision.trigger_stop.reason == (
        "max_daily_loss: day P&L -5.20% reached the -5.00% limit "
        "(NLV 94,800.00, start of day 100,000.00)"
    )


def test_e9_halt_rejects_even_a_risk_reducing_close() -> None:
    snapshot = account_a(nlv=D("94800.00"))
    p = protection_p(emergency_stop_active=True, emergency_stop_mode=StopMode.HALT)

    decision = decide(stc("TQQQ", 100), snapshot, [p])

    assert not decision.allowed
    assert decision.codes == (Code.EMERGENCY_STOP,)
    assert decision.message == "emergency_stop: the emergency stop is active (mode halt)"
    assert decision.risk_reducing
    assert decision.trigger_stop is None  # already active
    assert not decision.strict_position_effect


def test_e10_reduce_only_lets_a_risk_reducing_close_through_with_strict_validation() -> None:
    snapshot = account_a(nlv=D("94800.00"))
    p = protection_p(emergency_stop_active=True, emergency_stop_mode=StopMode.REDUCE_ONLY)

    decision = decide(stc("TQQQ", 100), snapshot, [p])

    assert decision.allowed
    assert decision.risk_reducing
    assert decision.strict_position_effect
    assert decision.trigger_stop is None


def test_e11_reduce_only_rejects_a_close_larger_than_the_holding() -> None:
    snapshot = account_a(nlv=D("94800.00"))
    p = protection_p(emergency_stop_active=True, emergency_stop_mode=StopMode.REDUCE_ONLY)

    decision = decide(stc("TQQQ", 150), snapshot, [p])

    assert not decision.allowed
    assert decision.codes == (Code.EMERGENCY_STOP,)
    assert not decision.risk_reducing  # 150 > 100 held
    # TQQQ's risk falls (4,935.00 -> 2,467.50), so no group is named as worsened
    assert decision.message == (
        "emergency_stop: the emergency stop is active (mode reduce_only) "
        "and this order is not risk-reducing"
    )
    assert decision.violations[0].inputs == {"mode": "reduce_only", "risk_reducing": "false"}
    assert not decision.strict_position_effect


def test_e12_daily_trade_count_reached() -> None:
    decision = decide(bto("AAPL", 1, "150.00"), account_a(), [P], trades_today=50)

    assert not decision.allowed
    assert decision.codes == (Code.MAX_DAILY_TRADES,)
    assert decision.message == (
        "max_daily_trades: 50 of 50 orders already forwarded today; this request would add 1"
    )


def test_e13_working_order_counts_toward_concentration() -> None:
    snapshot = account_a(working_orders=(working(bto("AAPL", 100, "150.00")),))

    decision = decide(bto("AAPL", 40, "150.00"), snapshot, [P])

    assert not decision.allowed
    assert decision.codes == (Code.MAX_POSITION_CONCENTRATION,)
    aapl = decision.figures.groups["AAPL"]
    assert (aapl.risk_before, aapl.risk_after) == (D("15000.00"), D("21000.00"))
    assert decision.figures.concentration_after == {"AAPL": D("21000.00")}
    assert decision.figures.largest_concentration_pct == D("21")
    assert decision.figures.order_value == D("6000.00")
    assert decision.figures.cash_after == D("39000.00")
    assert decision.figures.cash_after_pct == D("39")
    assert "AAPL risk after the order 21,000.00 is 21.00% of NLV 100,000.00" in decision.message


def test_e14_cash_reserve_only() -> None:
    snapshot = account_a(cash_balance=D("30000.00"))
    p = protection_p(max_single_trade_percentage=D(20), max_portfolio_exposure_percentage=D(85))

    decision = decide(bto("SPY", 36, "500.00"), snapshot, [p])

    assert not decision.allowed
    assert decision.codes == (Code.CASH_RESERVE,)
    assert decision.figures.order_value == D("18000.00")
    assert decision.figures.order_value_pct == D("18")
    assert decision.figures.cash_after == D("12000.00")
    assert decision.figures.cash_after_pct == D("12")
    # SPY group: 36 shares at 500.00 + the 2 held calls (830.00) = 18.83 %, within 20 %
    assert decision.figures.concentration_after == {"SPY": D("18830.00")}
    assert decision.message == (
        "cash_reserve: free cash after the order 12,000.00 is 12.00% of NLV 100,000.00, "
        "below the 25.00% reserve (cash 30,000.00 - shorts to buy back 0.00 - "
        "working orders 0.00 - this order 18,000.00)"
    )


def test_e15_debit_spread_risks_its_debit() -> None:
    o = order(
        leg(QQQ520, 3, "Buy to Open", OPT),
        leg(QQQ530, 3, "Sell to Open", OPT),
        price="2.15",
    )

    decision = decide(o, account_a_with_options(), [P])

    assert decision.allowed
    # marks: 3 x (7.20 - 5.05) x 100 = 645.00, all lost at QQQ <= 520 (the debit at mid)
    qqq = decision.figures.groups["QQQ"]
    assert (qqq.risk_before, qqq.risk_after) == (D(0), D("645.00"))
    assert not qqq.unbounded
    assert qqq.worst_case == "QQQ at 0.00 on 2026-01-16"
    assert decision.figures.order_value == D("645.00")
    assert decision.figures.order_value_pct == D("0.645")
    assert decision.figures.cash_after == D("59355.00")


def test_e16_credit_spread_risks_width_minus_credit() -> None:
    o = order(
        leg(P480, 2, "Sell to Open", OPT),
        leg(P470, 2, "Buy to Open", OPT),
        price="1.80",
        effect="Credit",
    )

    decision = decide(o, account_a_with_options(), [P])

    assert decision.allowed
    # width 10 x 100 x 2 - credit at mid 2 x (3.00 - 1.20) x 100 = 2,000 - 360 = 1,640.00;
    # the spread shares the 2026-12-18 bucket with the 2 held SPY calls (830.00)
    spy = decision.figures.groups["SPY"]
    assert (spy.risk_before, spy.risk_after) == (D("830.00"), D("2470.00"))
    assert spy.worst_case == "SPY at 0.00 on 2026-12-18"
    assert decision.figures.order_value == D("1640.00")
    assert decision.figures.order_value_pct == D("1.64")
    assert decision.figures.exposure_after == D("7405.00")  # 4,935 + 2,470
    # rules-examples.md reserved the max loss as cash (cash impact -1,640.00); in the risk
    # model free cash counts only debits and buy-backs of held shorts, and a credit adds
    # nothing: the max loss is in the risk figures above
    assert decision.figures.order_debit == D(0)
    assert decision.figures.cash_after == D("60000.00")


def test_e17_uncovered_short_put_risks_strike_minus_premium() -> None:
    o = order(leg(P480, 1, "Sell to Open", OPT), price="3.00", effect="Credit")

    decision = decide(o, account_a_with_options(), [P])

    assert not decision.allowed
    assert decision.codes == (Code.MAX_SINGLE_TRADE, Code.MAX_POSITION_CONCENTRATION)
    # rules-examples.md valued the put at its strike notional 48,000.00; its risk is what SPY
    # at 0 costs: 480 x 100 - the 3.00 mark x 100 = 47,700.00; the group after also holds
    # the 2 long SPY 600 calls (830.00, worthless at 0): 48,530.00
    spy = decision.figures.groups["SPY"]
    assert (spy.risk_before, spy.risk_after) == (D("830.00"), D("48530.00"))
    assert decision.figures.order_value == D("47700.00")
    assert decision.figures.order_value_pct == D("47.7")
    assert decision.figures.concentration_after == {"SPY": D("48530.00")}
    assert "order value 47,700.00 is 47.70% of NLV 100,000.00" in decision.violations[0].message
    assert decision.violations[1].message == (
        "max_position_concentration: SPY risk after the order 48,530.00 is 48.53% of NLV "
        "100,000.00, above the 20.00% limit; worst case SPY at 0.00 on 2026-12-18"
    )


def test_e18_inactive_protection_allows_and_records_why() -> None:
    p = protection_p(
        active=False,
        cash_reserve_percentage=D(30),
        max_single_trade_percentage=D(5),
        max_daily_loss_percentage=D(3),
    )

    decision = decide(bto("AAPL", 1000, "150.00"), account_a(), [p])

    assert decision.allowed
    assert decision.note_codes == (Code.PROTECTION_INACTIVE,)
    assert decision.notes[0].protection_id == "P"
    assert decision.figures.order_value == D("150000.00")
    assert decision.figures.exposure_after == D("155765.00")


def test_e19_inactive_protection_still_honours_the_stop() -> None:
    p = protection_p(active=False, emergency_stop_active=True)

    decision = decide(bto("AAPL", 1, "150.00"), account_a(), [p])

    assert not decision.allowed
    assert decision.codes == (Code.EMERGENCY_STOP,)
    assert decision.note_codes == (Code.PROTECTION_INACTIVE,)


def test_e20_unprotected_account_is_guarded_by_the_defaults() -> None:
    snapshot = account_a(account_number="5WZ99999")

    decision = decide(bto("AAPL", 100), snapshot, [DEFAULT_LIMITS])

    assert not decision.allowed
    assert decision.codes == (Code.MAX_SINGLE_TRADE,)
    assert decision.violations[0].protection_id == "default"
    assert decision.note_codes == (Code.DEFAULT_PROTECTION,)
    assert decision.notes[0].message == "no protection: the configured defaults apply"
    assert "15.01% of NLV 100,000.00, above the 10.00% limit" in decision.message


def test_e20_no_protection_at_all_rejects() -> None:
    decision = decide(bto("AAPL", 1, "150.00"), account_a(), [])

    assert not decision.allowed
    assert decision.codes == (Code.NO_PROTECTION,)
    assert decision.message == "no_protection: the account has no protection"
