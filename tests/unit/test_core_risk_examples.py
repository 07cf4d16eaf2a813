"""shared/risk-model.md R1-R19: the test oracle of the worst-case-loss model, exact figures."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from gatekeeper.core.codes import Code
from gatekeeper.core.decision import Decision
from gatekeeper.core.instruments import Instrument
from gatekeeper.core.parse import parse_complex_order
from gatekeeper.core.snapshot import AccountSnapshot, Limits, Position, StopMode
from gatekeeper.core.symbols import InstrumentType
from tests.unit.builders import (
    NOW,
    bto,
    decide,
    instruments,
    leg,
    option,
    order,
    protection_p,
    quote,
    sto,
    working,
)

D = Decimal
C600 = "SPY   261218C00600000"
C610 = "SPY   261218C00610000"
P450 = "SPY   261218P00450000"
P440 = "SPY   261218P00440000"
JAN600 = "SPY   270115C00600000"
AAPL200 = "AAPL  261218C00200000"
OPT = "Equity Option"


def account_b(*positions: Position, **changes: Any) -> AccountSnapshot:
    """Account B of risk-model.md section 5."""
    snapshot = AccountSnapshot(
        account_number="5WT00002",
        nlv=D("100000.00"),
        cash_balance=D("60000.00"),
        start_of_day_nlv=D("100000.00"),
        fetched_at=NOW,
        positions=positions,
        quotes={
            q.symbol: q
            for q in (
                quote("AAPL", "149.90", "150.10"),
                quote("SPY", "499.90", "500.10"),
                quote(C600, "4.10", "4.20"),
                quote(C610, "3.10", "3.20"),
                quote(P450, "1.95", "2.05"),
                quote(P440, "1.45", "1.55"),
                quote(JAN600, "6.90", "7.10"),
                quote(AAPL200, "0.95", "1.05"),
            )
        },
        instruments=instruments(
            *(option(s) for s in (C600, C610, P450, P440, JAN600, AAPL200)),
        ),
    )
    return replace(snapshot, **changes)


def held(symbol: str, quantity: int, underlying: str = "SPY") -> Position:
    kind = InstrumentType.EQUITY_OPTION if len(symbol) == 21 else InstrumentType.EQUITY
    mult = D(100) if kind is InstrumentType.EQUITY_OPTION else D(1)
    return Position(symbol, kind, D(quantity), multiplier=mult, underlying=underlying)


def vertical() -> tuple[Position, Position]:
    return held(C600, 10), held(C610, -10)


def group(decision: Decision, name: str) -> tuple[Decimal | None, Decimal | None]:
    figures = decision.figures.groups[name]
    return figures.risk_before, figures.risk_after


P = protection_p()
NO_COLLAR = protection_p(price_collar_equity_percentage=None)


def test_r1_short_sale_without_a_quote_is_never_valued_at_its_limit() -> None:
    decision = decide(sto("NVDA", 5000, "0.01"), account_b(), [P])

    assert decision.codes == (Code.PRICE_UNAVAILABLE,)
    assert "NVDA: no quote" in decision.message
    assert decision.figures.order_value is None


def test_r2_short_sale_is_stressed_up_and_unbounded() -> None:
    snapshot = account_b()
    snapshot = replace(
        snapshot, quotes={**snapshot.quotes, "NVDA": quote("NVDA", "119.90", "120.10")}
    )

    # the risk-model oracle predates price collars (issue 9): judged without them first
    decision = decide(sto("NVDA", 5000, "0.01"), snapshot, [NO_COLLAR])
    collared = decide(sto("NVDA", 5000, "0.01"), snapshot, [P])

    assert decision.codes == (
        Code.MAX_SINGLE_TRADE,
        Code.MAX_PORTFOLIO_EXPOSURE,
        Code.MAX_POSITION_CONCENTRATION,
    )
    assert collared.codes == (Code.PRICE_COLLAR, *decision.codes)
    nvda = decision.figures.groups["NVDA"]
    assert nvda.risk_after == D("600000.00")
    assert nvda.unbounded
    assert nvda.worst_case == "NVDA at 240.00 (unbounded above)"
    assert decision.figures.order_value == D("600000.00")
    assert decision.figures.order_value_pct == D(600)
    assert "worst case NVDA at 240.00" in decision.message


def test_r3_held_vertical_counts_its_max_loss_and_does_not_block() -> None:
    decision = decide(bto("AAPL", 1, "150.00"), account_b(*vertical()), [P])

    assert decision.allowed
    assert decision.figures.exposure_before == D("1000.00")
    assert decision.figures.exposure_after == D("1150.00")
    assert decision.figures.exposure_after_pct == D("1.15")


def stopped(mode: StopMode = StopMode.REDUCE_ONLY) -> Limits:
    return protection_p(emergency_stop_active=True, emergency_stop_mode=mode)


def test_r4_leg_out_is_not_risk_reducing_under_reduce_only() -> None:
    decision = decide(
        order(leg(C600, 10, "Sell to Close", OPT)), account_b(*vertical()), [stopped()]
    )

    assert not decision.allowed
    assert decision.codes[0] is Code.EMERGENCY_STOP
    assert not decision.risk_reducing
    assert group(decision, "SPY") == (D("1000.00"), D("496850.00"))
    assert decision.figures.groups["SPY"].unbounded
    assert (
        decision.figures.groups["SPY"].worst_case
        == "SPY at 1,110.00 on 2026-12-18 (unbounded above)"
    )
    assert "not risk-reducing (SPY risk 1,000.00 -> 496,850.00" in decision.message
    # and the sizing rules
    assert Code.MAX_SINGLE_TRADE in decision.codes


def test_r5_closing_the_whole_spread_is_risk_reducing_and_strict() -> None:
    both = order(leg(C600, 10, "Sell to Close", OPT), leg(C610, 10, "Buy to Close", OPT))

    decision = decide(both, account_b(*vertical()), [stopped()])

    assert decision.allowed
    assert decision.risk_reducing
    assert group(decision, "SPY") == (D("1000.00"), D(0))
    assert decision.strict_position_effect
    assert Code.RISK_REDUCING in decision.note_codes


def test_r6_buy_to_close_alone_is_risk_reducing() -> None:
    decision = decide(
        order(leg(C610, 10, "Buy to Close", OPT)), account_b(*vertical()), [stopped()]
    )

    assert decision.allowed
    assert decision.risk_reducing
    assert decision.strict_position_effect


def test_r7_leg_out_without_a_stop_is_valued_at_its_risk_increase() -> None:
    decision = decide(order(leg(C600, 10, "Sell to Close", OPT)), account_b(*vertical()), [P])

    assert decision.codes == (
        Code.MAX_SINGLE_TRADE,
        Code.MAX_PORTFOLIO_EXPOSURE,
        Code.MAX_POSITION_CONCENTRATION,
    )
    assert decision.figures.order_value == D("495850.00")
    assert decision.figures.order_value_pct == D("495.85")


def test_r8_covered_call_reduces_risk_and_costs_nothing() -> None:
    decision = decide(
        order(leg(AAPL200, 1, "Sell to Open", OPT), price="1.00", effect="Credit"),
        account_b(held("AAPL", 100, "AAPL")),
        [P],
    )

    assert decision.allowed
    assert group(decision, "AAPL") == (D("15000.00"), D("14900.00"))
    assert decision.figures.order_value == D(0)
    assert not decision.figures.groups["AAPL"].unbounded


def test_r9_buy_write_is_valued_once() -> None:
    buy_write = order(
        leg("AAPL", 100, "Buy to Open"), leg(AAPL200, 1, "Sell to Open", OPT), price="149.00"
    )

    decision = decide(buy_write, account_b(), [P])

    assert decision.codes == (Code.MAX_SINGLE_TRADE,)
    assert decision.figures.order_value == D("14900.00")
    assert decision.figures.order_value_pct == D("14.9")
    assert group(decision, "AAPL") == (D(0), D("14900.00"))


def test_r10_spx_and_spxw_are_one_group() -> None:
    spx = "SPX   261218P01000000"
    spxw = "SPXW  261218P01000000"
    snapshot = AccountSnapshot(
        account_number="5WT00002",
        nlv=D(1_000_000),
        cash_balance=D(1_000_000),
        start_of_day_nlv=D(1_000_000),
        fetched_at=NOW,
        positions=(held(spx, -2, "SPX"),),
        quotes={
            q.symbol: q
            for q in (
                quote("SPX", "5999.50", "6000.50"),
                quote(spx, "49.50", "50.50"),
                quote(spxw, "49.50", "50.50"),
            )
        },
        instruments=instruments(option(spx, "SPX"), option(spxw, "SPX")),
    )

    decision = decide(sto(spxw, 1, "50.00", OPT), snapshot, [P])

    assert decision.codes == (Code.MAX_POSITION_CONCENTRATION,)
    assert set(decision.figures.groups) == {"SPX"}
    assert group(decision, "SPX") == (D("190000.00"), D("285000.00"))
    assert decision.figures.largest_concentration_pct == D("28.5")
    assert (
        "max_position_concentration: SPX risk after the order 285,000.00 is 28.50% of NLV "
        "1,000,000.00, above the 20.00% limit; worst case SPX at 0.00 on 2026-12-18"
    ) in decision.message


def test_r11_calendar_is_covered_by_the_later_long() -> None:
    decision = decide(bto("AAPL", 1, "150.00"), account_b(held(C600, -10), held(JAN600, 10)), [P])

    assert decision.allowed
    assert decision.figures.exposure_before == D("2850.00")


def test_r12_reverse_calendar_stays_naked() -> None:
    decision = decide(bto("AAPL", 1, "150.00"), account_b(held(C600, 10), held(JAN600, -10)), [P])

    assert decision.codes == (Code.MAX_PORTFOLIO_EXPOSURE,)
    assert decision.figures.exposure_before == D("497150.00")
    # AAPL is the touched group; SPY's concentration is not re-checked by an AAPL order
    assert "exposure after the order 497,300.00" in decision.message


def test_r12_reverse_calendar_rejects_concentration_when_spy_is_touched() -> None:
    snapshot = account_b(held(C600, 10), held(JAN600, -10))

    decision = decide(order(leg(P450, 1, "Buy to Open", OPT), price="2.05"), snapshot, [P])

    assert Code.MAX_PORTFOLIO_EXPOSURE in decision.codes
    assert Code.MAX_POSITION_CONCENTRATION in decision.codes
    assert decision.figures.groups["SPY"].risk_before == D("497150.00")
    assert decision.figures.groups["SPY"].unbounded


def test_r13_credit_put_vertical_risks_width_minus_credit() -> None:
    decision = decide(bto("AAPL", 1, "150.00"), account_b(held(P450, -1), held(P440, 1)), [P])

    assert decision.allowed
    assert decision.figures.exposure_before == D("950.00")


def test_r14_naked_put_risks_strike_minus_premium() -> None:
    decision = decide(sto(P450, 1, "2.00", OPT), account_b(), [P])

    assert decision.codes == (Code.MAX_SINGLE_TRADE, Code.MAX_POSITION_CONCENTRATION)
    assert group(decision, "SPY") == (D(0), D("44800.00"))
    assert decision.figures.order_value == D("44800.00")


def r15(working_quantity: int) -> Decision:
    tsla = Position("TSLA", InstrumentType.EQUITY, D(-70))
    snapshot = account_b(
        tsla,
        cash_balance=D("117500.00"),
        working_orders=(working(bto("AAPL", working_quantity, "150.00")),),
    )
    snapshot = replace(
        snapshot, quotes={**snapshot.quotes, "TSLA": quote("TSLA", "249.90", "250.10")}
    )
    limits = protection_p(
        cash_reserve_percentage=D(50),
        max_single_trade_percentage=D(20),
        max_portfolio_exposure_percentage=D(85),
        max_position_concentration_percentage=D(100),
    )
    return decide(bto("AAPL", 130, "150.00"), snapshot, [limits])


def test_r15_short_proceeds_are_not_free_cash() -> None:
    decision = r15(200)

    assert decision.allowed
    assert decision.figures.cash_after == D("50500.00")
    assert decision.figures.cash_after_pct == D("50.5")


def test_r16_free_cash_below_the_reserve() -> None:
    decision = r15(210)

    assert decision.codes == (Code.CASH_RESERVE,)
    assert decision.figures.cash_after == D("49000.00")
    assert (
        "free cash after the order 49,000.00 is 49.00% of NLV 100,000.00, below the 50.00% "
        "reserve (cash 117,500.00 - shorts to buy back 17,500.00 - working orders 31,500.00 "
        "- this order 19,500.00)"
    ) in decision.message


def test_r17_oco_members_are_alternatives() -> None:
    limit = {"order-type": "Limit", "price": "140.00", "price-effect": "Debit"}
    stop = {"order-type": "Stop", "stop-trigger": "160.00"}
    members = [
        {**kind, "time-in-force": "GTC", "legs": [leg("AAPL", 60, "Buy to Open")]}
        for kind in (limit, stop)
    ]

    decision = decide(parse_complex_order({"type": "OCO", "orders": members}), account_b(), [P])

    assert decision.allowed
    assert decision.figures.order_value == D("9600.00")
    assert decision.figures.order_value_pct == D("9.6")
    assert decision.figures.exposure_after == D("9000.00")
    assert decision.trade_count == 2


MES = Instrument("/MESZ6", InstrumentType.FUTURE, "/MES", D(5), "/MESZ6", InstrumentType.FUTURE)


def test_r18_future_is_priced_from_its_instrument() -> None:
    snapshot = account_b(
        quotes={"/MESZ6": quote("/MESZ6", "5999.75", "6000.25")}, instruments=instruments(MES)
    )
    buy = order(leg("/MESZ6", 1, "Buy", "Future"), price="6000.00")

    decision = decide(buy, snapshot, [P])

    assert decision.codes == (Code.MAX_SINGLE_TRADE, Code.MAX_POSITION_CONCENTRATION)
    assert group(decision, "/MES") == (D(0), D("30000.00"))
    assert decision.figures.order_value == D("30000.00")
    assert decision.figures.cash_after == D("60000.00")  # futures are margined, not paid


def test_r18_future_without_its_instrument_is_unpriceable() -> None:
    snapshot = account_b(quotes={"/MESZ6": quote("/MESZ6", "5999.75", "6000.25")})

    decision = decide(order(leg("/MESZ6", 1, "Buy", "Future"), price="6000.00"), snapshot, [P])

    assert decision.codes == (Code.PRICE_UNAVAILABLE,)
    assert "/MESZ6: instrument unknown" in decision.message


def test_r19_crossed_quote_is_refused() -> None:
    snapshot = account_b(quotes={"AAPL": quote("AAPL", "150.00", "1.50")})

    decision = decide(bto("AAPL", 6000), snapshot, [P])

    assert decision.codes == (Code.QUOTE_INVALID,)
    assert "quote_invalid: AAPL: crossed quote (bid 150.00 above ask 1.50)" in decision.message


@pytest.mark.parametrize(
    ("bid", "ask", "reason"),
    [
        ("0", "1.00", "bid 0 is not positive"),
        ("1.00", "3.50", "spread 1.00/3.50 is 111.11% of the mid"),
    ],
)
def test_unusable_quotes_name_why(bid: str, ask: str, reason: str) -> None:
    snapshot = account_b(quotes={"AAPL": quote("AAPL", bid, ask)})

    decision = decide(bto("AAPL", 1, "1.00"), snapshot, [P])

    assert decision.codes == (Code.QUOTE_INVALID,)
    assert reason in decision.message


def test_oco_members_on_different_underlyings_are_each_priced() -> None:
    members = [
        {
            "order-type": "Limit",
            "price": price,
            "price-effect": "Debit",
            "time-in-force": "GTC",
            "legs": [leg(symbol, 10, "Buy to Open")],
        }
        for symbol, price in (("AAPL", "150.00"), ("SPY", "500.00"))
    ]

    decision = decide(parse_complex_order({"type": "OCO", "orders": members}), account_b(), [P])

    assert decision.allowed
    # the worst member: 10 SPY at 500 = 5,000 (AAPL would be 1,500)
    assert decision.figures.order_value == D("5000.00")
    assert decision.figures.exposure_after == D("5000.00")
    assert decision.figures.concentration_after == {"AAPL": D("1500.00"), "SPY": D("5000.00")}
