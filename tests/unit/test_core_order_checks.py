"""Price collars, the per-leg quantity cap and the broker's account restrictions (issue 9)."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from gatekeeper.core.codes import Code
from gatekeeper.core.instruments import Instrument
from gatekeeper.core.order import Order
from gatekeeper.core.parse import parse_order
from gatekeeper.core.snapshot import AccountSnapshot, Quote, TradingStatus
from gatekeeper.core.symbols import InstrumentType
from tests.unit.builders import (
    SPY_CALL,
    account_a,
    bto,
    decide,
    instruments,
    leg,
    option,
    order,
    protection_p,
    quote,
    stc,
    sto,
)

D = Decimal
P = protection_p()
C610 = "SPY   261218C00610000"
OPT = "Equity Option"


def more_quotes(*quotes: Quote) -> AccountSnapshot:
    snapshot = account_a()
    return replace(snapshot, quotes={**snapshot.quotes, **{q.symbol: q for q in quotes}})


def with_options() -> AccountSnapshot:
    snapshot = account_a()
    return replace(
        snapshot,
        quotes={
            **snapshot.quotes,
            SPY_CALL: quote(SPY_CALL, "4.10", "4.20"),
            C610: quote(C610, "3.10", "3.20"),
        },
        instruments=instruments(option(SPY_CALL), option(C610)),
    )


@pytest.mark.parametrize(
    ("price", "codes"),
    [("157.605", ()), ("157.61", (Code.PRICE_COLLAR,)), ("1000.00", (Code.PRICE_COLLAR,))],
)
def test_equity_buy_limit_is_collared_5_percent_above_the_ask(
    price: str, codes: tuple[Code, ...]
) -> None:
    limits = protection_p(
        max_single_trade_percentage=D(20), max_position_concentration_percentage=D(100)
    )

    decision = decide(bto("AAPL", 1, price), account_a(), [limits])

    assert decision.codes == codes


def test_the_collar_names_price_quote_and_limit() -> None:
    decision = decide(bto("AAPL", 1, "1000.00"), account_a(), [P])

    assert (
        "price_collar: AAPL buy above the market: price 1000.00 against the ask 150.10; "
        "the equity collar allows at most 157.605" in decision.message
    )
    violation = decision.violations[0]
    assert D(violation.inputs["limit"]) == D("157.605")


def test_a_sell_far_below_the_bid_is_collared() -> None:
    decision = decide(sto("AAPL", 10, "100.00"), account_a(), [P])

    assert Code.PRICE_COLLAR in decision.codes
    assert "sell below the market: price 100.00 against the bid 149.90" in decision.message


def test_option_collar_is_the_larger_of_the_percentage_and_the_width_multiple() -> None:
    snapshot = with_options()
    # ask 4.20, width 0.10: max(25 % of 4.20 = 1.05, 2 x 0.10) = 1.05 -> at most 5.25
    at = decide(order(leg(SPY_CALL, 1, "Buy to Open", OPT), price="5.25"), snapshot, [P])
    above = decide(order(leg(SPY_CALL, 1, "Buy to Open", OPT), price="5.26"), snapshot, [P])

    assert at.allowed
    assert above.codes == (Code.PRICE_COLLAR,)


def test_a_vertical_is_collared_on_its_net_price() -> None:
    snapshot = with_options()
    # natural debit 4.20 - 3.10 = 1.10, width 0.20: max(0.275, 0.40) -> at most 1.50
    spread = [leg(SPY_CALL, 1, "Buy to Open", OPT), leg(C610, 1, "Sell to Open", OPT)]

    assert decide(order(*spread, price="1.50"), snapshot, [P]).allowed
    assert decide(order(*spread, price="1.51"), snapshot, [P]).codes == (Code.PRICE_COLLAR,)


def test_a_market_order_on_an_option_with_a_wide_spread_is_refused() -> None:
    snapshot = with_options()
    snapshot = replace(snapshot, quotes={**snapshot.quotes, C610: quote(C610, "1.00", "2.00")})

    decision = decide(order(leg(C610, 1, "Buy to Open", OPT)), snapshot, [P])

    assert decision.codes == (Code.PRICE_COLLAR,)
    assert "market order on SPY 261218C00610000 with a bid-ask width of 1.00" in decision.message


def test_future_collar_is_2_percent() -> None:
    mes = Instrument("/MESZ6", InstrumentType.FUTURE, "/MES", D(5), "/MESZ6", InstrumentType.FUTURE)
    snapshot = more_quotes(quote("/MESZ6", "5999.75", "6000.25"))
    snapshot = replace(snapshot, instruments=instruments(mes))
    limits = protection_p(
        max_single_trade_percentage=D(20),
        max_position_concentration_percentage=D(100),
        max_order_quantity={},
    )
    buy = order(leg("/MESZ6", 1, "Buy", "Future"), price="6200.00")
    limits = replace(limits, max_single_trade_percentage=D(40))

    decision = decide(buy, snapshot, [limits])

    assert decision.codes == (Code.PRICE_COLLAR,)
    assert "the future collar allows at most 6120.255" in decision.message


def test_collars_off_and_inactive_protections_do_not_collar() -> None:
    off = protection_p(price_collar_equity_percentage=None, max_single_trade_percentage=D(20))

    assert decide(bto("AAPL", 1, "1000.00"), account_a(), [off]).allowed
    assert decide(bto("AAPL", 1, "1000.00"), account_a(), [protection_p(active=False)]).allowed


def test_stop_orders_are_not_collared_on_their_trigger() -> None:
    stop = {
        "order-type": "Stop",
        "stop-trigger": "170.00",
        "time-in-force": "GTC",
        "legs": [leg("AAPL", 10, "Buy to Open")],
    }
    assert decide(parse_order(stop), account_a(), [P]).allowed


def test_quantity_cap_per_instrument_type() -> None:
    cheap = more_quotes(quote("XYZ", "0.099", "0.101"))
    limits = protection_p(max_order_quantity={InstrumentType.EQUITY: D(50_000)})

    assert decide(bto("XYZ", 50_000, "0.10"), cheap, [limits]).allowed
    decision = decide(bto("XYZ", 50_001, "0.10"), cheap, [limits])

    assert decision.codes == (Code.MAX_ORDER_QUANTITY,)
    assert "max_order_quantity: XYZ quantity 50001 is above the 50000 limit for Equity" in (
        decision.message
    )


def test_default_option_cap_is_1000_contracts() -> None:
    snapshot = with_options()
    limits = protection_p(
        max_single_trade_percentage=D(20),
        max_portfolio_exposure_percentage=D(85),
        max_position_concentration_percentage=D(100),
        cash_reserve_percentage=D(20),
    )

    decision = decide(order(leg(C610, 1001, "Buy to Open", OPT), price="3.20"), snapshot, [limits])

    assert Code.MAX_ORDER_QUANTITY in decision.codes


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (TradingStatus(is_frozen=True), Code.ACCOUNT_RESTRICTED),
        (TradingStatus(is_closed=True), Code.ACCOUNT_RESTRICTED),
        (TradingStatus(is_closing_only=True), Code.ACCOUNT_CLOSING_ONLY),
        (TradingStatus(is_in_margin_call=True), Code.ACCOUNT_MARGIN_CALL),
    ],
)
def test_the_brokers_restrictions_refuse_opening_orders(status: TradingStatus, code: Code) -> None:
    decision = decide(bto("AAPL", 1, "150.00"), account_a(trading_status=status), [P])

    assert decision.codes == (code,)


@pytest.mark.parametrize(
    ("status", "allowed"),
    [
        (TradingStatus(is_frozen=True), False),
        (TradingStatus(is_closing_only=True), True),
        (TradingStatus(is_in_margin_call=True), True),
    ],
)
def test_closing_orders_under_restrictions(status: TradingStatus, allowed: bool) -> None:
    decision = decide(stc("TQQQ", 100), account_a(trading_status=status), [P])

    assert decision.allowed is allowed
    assert decision.risk_reducing


def test_restrictions_apply_without_any_protection() -> None:
    frozen = account_a(trading_status=TradingStatus(is_frozen=True))

    decision = decide(stc("TQQQ", 100), frozen, [])

    assert Code.ACCOUNT_RESTRICTED in decision.codes


def conditional(threshold: str, quantity: int = 100) -> Order:
    return parse_order(
        {
            "order-type": "Market",
            "time-in-force": "GTC",
            "legs": [leg("AAPL", quantity, "Buy to Open")],
            "rules": {
                "conditions": [
                    {
                        "action": "route",
                        "symbol": "AAPL",
                        "instrument-type": "Equity",
                        "indicator": "last",
                        "comparator": "gte",
                        "threshold": threshold,
                    }
                ]
            },
        }
    )


def test_a_conditional_order_is_valued_at_its_threshold() -> None:
    # 50 AAPL at today's 150.10 = 7,505 (7.5 %): fine; routed at 300 = 15,000 (15 %)
    today = decide(bto("AAPL", 50), account_a(), [P])
    routed = decide(conditional("300.00", 50), account_a(), [P])

    assert today.allowed
    assert routed.codes == (Code.MAX_SINGLE_TRADE,)
    assert routed.figures.order_value == D("15000.00")


def test_a_threshold_below_the_market_keeps_todays_figures() -> None:
    decision = decide(conditional("100.00", 50), account_a(), [P])

    assert decision.allowed
    assert decision.figures.order_value == D("7505.00")
