"""Rules beyond the worked examples: the ``check_<code>`` functions and their edges, complex
orders, replaces, pending orders, fees, and valuation on the risk model (shared/risk-model.md).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import timedelta
from decimal import Decimal

import pytest

from gatekeeper.core import rules, sizing
from gatekeeper.core.codes import Code
from gatekeeper.core.facts import account_facts
from gatekeeper.core.holdings import OrderInput, contained_orders
from gatekeeper.core.instruments import Instrument
from gatekeeper.core.order import Order
from gatekeeper.core.parse import apply_replace, parse_complex_order, parse_order, parse_replace
from gatekeeper.core.pricing import Prices
from gatekeeper.core.snapshot import (
    DEFAULT_LIMITS,
    AccountSnapshot,
    Limits,
    Position,
    RiskParameters,
    StopMode,
)
from gatekeeper.core.symbols import InstrumentType
from tests.unit.builders import (
    NOW,
    account_a,
    bto,
    decide,
    instruments,
    leg,
    order,
    protection_p,
    quote,
    stc,
    sto,
    with_quotes,
    working,
)

D = Decimal
OPT = "Equity Option"
P = protection_p()
ES = Instrument("/ESZ6", InstrumentType.FUTURE, "/ES", D(50), "/ESZ6", InstrumentType.FUTURE)


def request(
    orders: OrderInput,
    snapshot: AccountSnapshot | None = None,
    *,
    trades_today: int = 0,
    age: float = 0.0,
    max_age: float | None = None,
    protected: bool = True,
    in_flight: Sequence[Order] = (),
) -> rules.RequestFacts:
    """What ``evaluate()`` hands each rule, for calling a ``check_<code>`` directly."""
    snapshot = snapshot or account_a()
    params = RiskParameters()
    facts = account_facts(
        orders, snapshot, params, Prices(snapshot, params, NOW), in_flight=in_flight
    )
    return rules.RequestFacts(
        facts=facts,
        trades_today=trades_today,
        adding=len(contained_orders(orders)),
        state_age_seconds=age,
        max_state_age_seconds=max_age,
        protected=protected,
    )


def aapl_at_100() -> AccountSnapshot:
    """Account A with AAPL's mid at 100.00: a limit buy at 100.00 then risks what it pays."""
    return account_a(quotes={**account_a().quotes, "AAPL": quote("AAPL", "99.95", "100.05")})


def stopped(mode: StopMode, **changes: object) -> Limits:
    return protection_p(emergency_stop_active=True, emergency_stop_mode=mode, **changes)


# -- the rule table -----------------------------------------------------------------------------


def test_rule_table_runs_the_stop_first_and_the_sizing_rules_last() -> None:
    assert [r.__name__ for r in rules.ACCOUNT_RULES] == [
        "check_stale_account_state",
        "check_no_protection",
        "check_account_restricted",
    ]
    assert [r.__name__ for r in rules.RULES] == [
        "check_emergency_stop",
        "check_max_daily_loss",
        "check_account_state_unavailable",
        "check_max_daily_trades",
        "check_price_unavailable",
        "check_quote_invalid",
        "check_price_collar",
        "check_max_order_quantity",
        "check_max_single_trade",
        "check_cash_reserve",
        "check_max_portfolio_exposure",
        "check_max_position_concentration",
    ]


# -- max_single_trade: exact comparison at the boundary ----------------------------------------


def test_exactly_at_the_single_trade_limit_passes() -> None:
    # debit 100 x 100.00 = risk increase 100 x 100.00 mid = 10,000.00 = 10 % exactly
    req = request(bto("AAPL", 100, "100.00"), aapl_at_100())

    assert req.facts.order_value == D("10000.00")
    assert sizing.check_max_single_trade(req, P) == []
    assert decide(bto("AAPL", 100, "100.00"), aapl_at_100(), [P]).allowed


def test_the_limit_price_is_not_the_reference_price() -> None:
    # the same order with AAPL's mid at 150.00: the risk increase 15,000.00 is the value
    decision = decide(bto("AAPL", 100, "100.00"), account_a(), [P])

    assert decision.codes == (Code.MAX_SINGLE_TRADE,)
    assert decision.figures.order_debit == D("10000.00")
    assert decision.figures.order_value == D("15000.00")


def test_a_fraction_of_a_cent_above_the_limit_is_rejected_though_it_rounds_to_it() -> None:
    # an absurd limit on purpose: the collar (tested on its own) would refuse it first
    no_collar = protection_p(price_collar_equity_percentage=None)
    decision = decide(bto("AAPL", 1, "10000.004"), account_a(), [no_collar])

    assert decision.codes == (Code.MAX_SINGLE_TRADE,)
    assert decision.figures.order_value == D("10000.004")
    assert "is 10.00% of NLV 100,000.00, above the 10.00% limit" in decision.message


def test_single_trade_violation_inputs_are_exact_strings_for_the_audit_row() -> None:
    [violation] = sizing.check_max_single_trade(request(bto("AAPL", 100)), P)

    assert violation.code is Code.MAX_SINGLE_TRADE
    assert violation.inputs == {
        "value": "15010.00",
        "value_pct": "15.01",
        "limit": "10000.00",
        "limit_pct": "10",
        "nlv": "100000.00",
    }
    assert violation.protection_id == "P"


# -- cash_reserve, exposure, concentration: exact boundaries ------------------------------------


def test_free_cash_exactly_at_the_reserve_passes_and_below_it_fails() -> None:
    loose = protection_p(
        max_single_trade_percentage=D(100), max_position_concentration_percentage=D(100)
    )
    # 60,000.00 - 200 x 175.00 = 25,000.00 = 25 % exactly
    at = request(bto("AAPL", 200, "175.00"))
    below = request(bto("AAPL", 200, "175.00005"))

    assert at.facts.free_cash_after == D("25000.00")
    assert sizing.check_cash_reserve(at, loose) == []
    [violation] = sizing.check_cash_reserve(below, loose)
    assert violation.inputs["cash_after"] == "24999.99000"
    assert violation.message.startswith(
        "cash_reserve: free cash after the order 24,999.99 is 25.00% of NLV 100,000.00, "
        "below the 25.00% reserve"
    )


def test_exposure_is_compared_exactly_not_after_rounding() -> None:
    # E1's exposure after is 7,265.00 = 7.265 %: within 7.265, above 7.2649 (shown 7.26 %)
    req = request(bto("AAPL", 10, "150.00"))

    assert (
        sizing.check_max_portfolio_exposure(
            req, protection_p(max_portfolio_exposure_percentage=D("7.265"))
        )
        == []
    )
    [violation] = sizing.check_max_portfolio_exposure(
        req, protection_p(max_portfolio_exposure_percentage=D("7.2649"))
    )
    assert violation.message == (
        "max_portfolio_exposure: exposure after the order 7,265.00 is 7.27% of NLV "
        "100,000.00, above the 7.26% limit; AAPL risk 0.00 -> 1,500.00, worst case AAPL at 0.00"
    )


def test_concentration_exactly_at_the_limit_passes_and_one_share_more_fails() -> None:
    loose = protection_p(max_single_trade_percentage=D(100))

    at = decide(bto("AAPL", 200, "100.00"), aapl_at_100(), [loose])
    above = decide(bto("AAPL", 201, "100.00"), aapl_at_100(), [loose])

    assert at.allowed
    assert at.figures.concentration_after == {"AAPL": D("20000.00")}
    assert above.codes == (Code.MAX_POSITION_CONCENTRATION,)
    assert above.violations[0].inputs["group"] == "AAPL"


def test_concentration_limit_of_none_disables_the_rule() -> None:
    off = protection_p(max_position_concentration_percentage=None)

    assert sizing.check_max_position_concentration(request(bto("AAPL", 140, "150.00")), off) == []


def test_concentration_checks_only_the_groups_the_order_touches() -> None:
    # TQQQ alone is 4.935 % of NLV, above a 4 % limit, but an AAPL order does not touch it
    tight = protection_p(max_position_concentration_percentage=D(4))

    decision = decide(bto("AAPL", 10, "150.00"), account_a(), [tight])

    assert decision.allowed
    assert set(decision.figures.groups) == {"AAPL"}


# -- every protection, inactive ones, the defaults ----------------------------------------------


def test_every_protection_applies_and_violations_name_it() -> None:
    loose = protection_p(protection_id="loose", max_single_trade_percentage=D(20))
    strict = protection_p(protection_id="strict", max_single_trade_percentage=D(1))

    decision = decide(bto("AAPL", 10, "150.00"), account_a(), [loose, strict])

    assert not decision.allowed
    assert [(v.code, v.protection_id) for v in decision.violations] == [
        (Code.MAX_SINGLE_TRADE, "strict")
    ]


def test_inactive_protection_skips_every_sizing_rule() -> None:
    req = request(bto("AAPL", 1000, "150.00"))
    off = protection_p(active=False)

    for check in (
        sizing.check_max_single_trade,
        sizing.check_cash_reserve,
        sizing.check_max_portfolio_exposure,
        sizing.check_max_position_concentration,
    ):
        assert check(req, P), check.__name__
        assert check(req, off) == [], check.__name__


def test_inactive_protection_still_counts_trades() -> None:
    decision = decide(
        bto("AAPL", 1, "150.00"), account_a(), [protection_p(active=False)], trades_today=50
    )

    assert decision.codes == (Code.MAX_DAILY_TRADES,)
    assert decision.note_codes == (Code.PROTECTION_INACTIVE,)


def test_inactive_protection_note_names_the_protection() -> None:
    decision = decide(bto("AAPL", 1, "150.00"), account_a(), [protection_p(active=False)])

    assert [(n.code, n.message, n.protection_id) for n in decision.notes] == [
        (
            Code.PROTECTION_INACTIVE,
            "protection_inactive: sizing rules skipped (the stop still applies)",
            "P",
        )
    ]


def test_default_protection_is_noted_even_when_the_order_passes() -> None:
    decision = decide(bto("AAPL", 1, "150.00"), account_a(), [DEFAULT_LIMITS])

    assert decision.allowed
    assert [(n.code, n.protection_id) for n in decision.notes] == [
        (Code.DEFAULT_PROTECTION, "default")
    ]


def test_no_protection_is_an_account_rule() -> None:
    req = request(bto("AAPL", 1, "150.00"), protected=False)

    [violation] = rules.check_no_protection(req)
    assert violation.code is Code.NO_PROTECTION
    assert violation.protection_id == ""
    assert rules.check_no_protection(request(bto("AAPL", 1, "150.00"))) == []


def test_no_protection_rejects_even_a_risk_reducing_close() -> None:
    decision = decide(stc("TQQQ", 100), account_a(), [])

    assert decision.risk_reducing
    assert decision.codes == (Code.NO_PROTECTION,)


# -- emergency stop ------------------------------------------------------------------------------


def test_inactive_stop_passes_everything() -> None:
    assert rules.check_emergency_stop(request(bto("AAPL", 1000, "150.00")), P) == []


def test_halt_rejects_risk_reducing_orders_too() -> None:
    [violation] = rules.check_emergency_stop(request(stc("TQQQ", 100)), stopped(StopMode.HALT))

    assert violation.inputs == {"mode": "halt", "risk_reducing": "true"}
    assert violation.message == "emergency_stop: the emergency stop is active (mode halt)"


def test_reduce_only_names_the_groups_an_order_worsens() -> None:
    req = request(sto("AAPL", 100, "150.00"))

    [violation] = rules.check_emergency_stop(req, stopped(StopMode.REDUCE_ONLY))
    # a short sale stressed up to S_hi = 2 x 150.00: 100 x 150.00 = 15,000.00
    assert violation.message == (
        "emergency_stop: the emergency stop is active (mode reduce_only) and this order is "
        "not risk-reducing (AAPL risk 0.00 -> 15,000.00, worst case AAPL at 300.00 "
        "(unbounded above))"
    )


def test_reduce_only_passes_a_risk_reducing_order() -> None:
    assert rules.check_emergency_stop(request(stc("TQQQ", 40)), stopped(StopMode.REDUCE_ONLY)) == []


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

    decision = decide(oto, account_a(), [stopped(StopMode.REDUCE_ONLY)])

    assert decision.codes == (Code.EMERGENCY_STOP,)
    assert not decision.risk_reducing
    assert not decision.strict_position_effect


def test_strict_flag_only_when_a_reduce_only_stop_let_the_order_through() -> None:
    normal = decide(stc("TQQQ", 100), account_a(), [P])
    reduce_only = decide(stc("TQQQ", 100), account_a(), [P, stopped(StopMode.REDUCE_ONLY)])

    assert normal.allowed
    assert not normal.strict_position_effect
    assert reduce_only.allowed
    assert reduce_only.strict_position_effect


# -- max_daily_loss and the stop trigger ---------------------------------------------------------


@pytest.mark.parametrize(
    ("nlv", "breached"),
    [("95000.00", True), ("95000.01", False), ("94999.99", True), ("100000.00", False)],
)
def test_daily_loss_is_breached_at_the_limit_exactly(nlv: str, breached: bool) -> None:
    req = request(bto("AAPL", 1, "150.00"), account_a(nlv=D(nlv)))

    assert rules.daily_loss_breached(P, req.facts) is breached
    assert bool(rules.check_max_daily_loss(req, P)) is breached


def test_daily_loss_just_above_the_limit_passes_without_a_trigger() -> None:
    decision = decide(bto("AAPL", 1, "150"), account_a(nlv=D("95000.01")), [P])

    assert decision.allowed
    assert decision.trigger_stop is None


def test_daily_loss_violation_inputs() -> None:
    [violation] = rules.check_max_daily_loss(
        request(bto("AAPL", 1, "150.00"), account_a(nlv=D("94800.00"))), P
    )

    assert violation.inputs == {
        "nlv": "94800.00",
        "start_of_day_nlv": "100000.00",
        "day_pnl_pct": "-5.2",
        "limit_pct": "5",
    }


def test_daily_loss_breach_lets_risk_reducing_orders_through_but_still_triggers_the_stop() -> None:
    decision = decide(stc("TQQQ", 100), account_a(nlv=D(94800)), [P])

    assert decision.allowed
    assert decision.trigger_stop is not None
    assert decision.trigger_stop.protection_ids == ("P",)


def test_daily_loss_breach_rejects_a_close_that_is_not_risk_reducing() -> None:
    decision = decide(stc("TQQQ", 150), account_a(nlv=D(94800)), [P])

    assert decision.codes == (Code.MAX_DAILY_LOSS,)
    assert decision.trigger_stop is not None


def test_daily_loss_triggers_every_protection_whose_stop_is_not_active() -> None:
    own = protection_p(protection_id="own")
    tighter = protection_p(protection_id="tighter", max_daily_loss_percentage=D(3))
    already = stopped(StopMode.HALT, protection_id="already")
    looser = protection_p(protection_id="looser", max_daily_loss_percentage=D(10))

    decision = decide(
        bto("AAPL", 1, "150.00"), account_a(nlv=D(94800)), [own, tighter, already, looser]
    )

    assert decision.trigger_stop is not None
    assert decision.trigger_stop.protection_ids == ("own", "tighter")
    # the reason quotes the first breached protection's limit
    assert "reached the -5.00% limit" in decision.trigger_stop.reason
    # an active stop reports emergency_stop, not max_daily_loss
    assert [(v.code, v.protection_id) for v in decision.violations] == [
        (Code.MAX_DAILY_LOSS, "own"),
        (Code.MAX_DAILY_LOSS, "tighter"),
        (Code.EMERGENCY_STOP, "already"),
    ]


def test_missing_start_of_day_nlv_rejects_orders_that_are_not_risk_reducing() -> None:
    snapshot = account_a(start_of_day_nlv=None)

    opening = decide(bto("AAPL", 1, "150"), snapshot, [P])
    closing = decide(stc("TQQQ", 1), snapshot, [P])

    assert opening.codes == (Code.ACCOUNT_STATE_UNAVAILABLE,)
    assert "no start-of-day NLV" in opening.message
    assert opening.figures.day_pnl_pct is None
    assert opening.trigger_stop is None
    assert closing.allowed


def test_non_positive_nlv_rejects_orders_that_are_not_risk_reducing() -> None:
    decision = decide(bto("AAPL", 1, "150"), account_a(nlv=D(0), start_of_day_nlv=D(0)), [P])

    assert decision.codes == (Code.ACCOUNT_STATE_UNAVAILABLE,)
    assert decision.figures.order_value_pct is None


# -- max_daily_trades ----------------------------------------------------------------------------


def test_daily_trades_up_to_the_limit_pass() -> None:
    assert rules.check_max_daily_trades(request(bto("AAPL", 1, "150"), trades_today=49), P) == []
    [violation] = rules.check_max_daily_trades(request(bto("AAPL", 1, "150"), trades_today=50), P)
    assert violation.inputs == {"trades_today": "50", "adding": "1", "limit": "50"}


def test_daily_trades_limit_of_none_disables_the_rule() -> None:
    off = protection_p(max_daily_trades=None)

    assert (
        rules.check_max_daily_trades(request(bto("AAPL", 1, "150"), trades_today=10_000), off) == []
    )


def test_risk_reducing_orders_are_counted_but_never_refused_by_the_trade_count() -> None:
    # issue 7: a breached or busy account can always be flattened; the trade still counts
    reducing = decide(stc("TQQQ", 100), account_a(), [P], trades_today=50)
    opening = decide(stc("TQQQ", 150), account_a(), [P], trades_today=50)

    assert reducing.risk_reducing
    assert reducing.allowed
    assert reducing.trade_count == 1
    assert opening.codes == (Code.MAX_DAILY_TRADES,)


def test_dry_run_is_checked_but_counts_no_trade() -> None:
    rejected = decide(bto("AAPL", 1, "150.00"), account_a(), [P], trades_today=50, dry_run=True)
    allowed = decide(bto("AAPL", 1, "150.00"), account_a(), [P], trades_today=49, dry_run=True)

    assert rejected.codes == (Code.MAX_DAILY_TRADES,)
    assert rejected.trade_count == 0
    assert allowed.allowed
    assert allowed.trade_count == 0


def test_complex_order_counts_against_the_daily_limit_once_per_contained_order() -> None:
    one = {
        "order-type": "Limit",
        "time-in-force": "Day",
        "price": "150",
        "price-effect": "Debit",
        "legs": [leg("AAPL", 1, "Buy to Open")],
    }
    pairs = parse_complex_order({"type": "PAIRS", "orders": [one, one]})

    assert decide(pairs, account_a(), [P], trades_today=48).allowed
    assert decide(pairs, account_a(), [P], trades_today=49).codes == (Code.MAX_DAILY_TRADES,)
    assert decide(pairs, account_a(), [P], trades_today=48).trade_count == 2


# -- stale state ---------------------------------------------------------------------------------


def test_stale_account_state_boundary() -> None:
    at = request(stc("TQQQ", 10), age=5.0, max_age=5.0)
    over = request(stc("TQQQ", 10), age=5.001, max_age=5.0)

    assert rules.check_stale_account_state(at) == []
    assert rules.check_stale_account_state(request(stc("TQQQ", 10), age=1e9)) == []
    [violation] = rules.check_stale_account_state(over)
    assert violation.inputs == {"age_seconds": "5.001", "max_seconds": "5.0"}


def test_stale_account_state_rejects_everything() -> None:
    decision = decide(
        stc("TQQQ", 10),
        account_a(fetched_at=NOW - timedelta(seconds=30)),
        [P],
        max_state_age=timedelta(seconds=5),
    )

    assert decision.risk_reducing
    assert decision.codes == (Code.STALE_ACCOUNT_STATE,)
    assert decision.message == (
        "stale_account_state: account state is 30s old, above the 5s maximum"
    )


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        decide(bto("AAPL", 1, "1"), account_a(), [P], now=NOW.replace(tzinfo=None))


# -- pending orders: working, in flight, replaced ------------------------------------------------


def test_in_flight_orders_count_as_working() -> None:
    decision = decide(
        bto("AAPL", 40, "150.00"), account_a(), [P], in_flight=[bto("AAPL", 100, "150.00")]
    )

    assert decision.codes == (Code.MAX_POSITION_CONCENTRATION,)
    aapl = decision.figures.groups["AAPL"]
    assert (aapl.risk_before, aapl.risk_after) == (D("15000.00"), D("21000.00"))
    assert decision.figures.cash_after == D("39000.00")  # 60,000 - 15,000 - 6,000


def test_in_flight_debits_count_in_free_cash() -> None:
    req = request(bto("AAPL", 1, "150.00"), in_flight=[bto("AAPL", 100, "150.00")])

    assert req.facts.pending_debits == D("15000.00")
    assert req.facts.free_cash_after == D("44850.00")


def test_replace_does_not_count_the_order_it_replaces() -> None:
    original = bto("AAPL", 100, "150.00")
    snapshot = account_a(working_orders=(working(original, "555"),))
    replaced = apply_replace(original, parse_replace({"price": "151.00"}))
    p = protection_p(max_single_trade_percentage=D(20))

    decision = decide(replaced, snapshot, [p], replaces_order_id="555")
    double = decide(replaced, snapshot, [p])

    assert decision.allowed
    # the new limit is paid (15,100.00) but AAPL risks its mid: 100 x 150.00
    assert decision.figures.order_value == D("15100.00")
    assert decision.figures.concentration_after == {"AAPL": D("15000.00")}
    assert decision.figures.cash_after == D("44900.00")
    assert decision.trade_count == 1
    assert double.codes == (Code.MAX_POSITION_CONCENTRATION,)
    assert double.figures.concentration_after == {"AAPL": D("30000.00")}
    assert double.figures.cash_after == D("29900.00")


def test_pending_close_reduces_what_a_new_close_can_close() -> None:
    snapshot = account_a(working_orders=(working(stc("TQQQ", 60)),))

    decision = decide(stc("TQQQ", 100), snapshot, [P])

    assert not decision.risk_reducing  # only 40 are left to close
    assert decision.allowed
    # before: 100 held - 60 working = 40 long (1,974.00); after: 60 short stressed to 98.70
    # (2,961.00); rules-examples-era value was the 60 opened at the bid (2,958.00)
    tqqq = decision.figures.groups["TQQQ"]
    assert (tqqq.risk_before, tqqq.risk_after) == (D("1974.00"), D("2961.00"))
    assert tqqq.unbounded
    assert decision.figures.order_value == D("987.00")
    assert decision.figures.exposure_before == D("2804.00")


def test_fees_add_to_the_debit_and_the_value() -> None:
    decision = decide(bto("AAPL", 10, "150.00"), account_a(), [P], fees=D("1.22"))

    assert decision.figures.order_debit == D("1501.22")
    assert decision.figures.order_value == D("1501.22")  # larger than the 1,500.00 of risk
    assert decision.figures.cash_after == D("58498.78")


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

    decision = decide(complex_order, account_a(), [P])

    assert decision.allowed
    assert decision.trade_count == 3
    assert not decision.risk_reducing  # the trigger opens
    # the trigger as filled, then the worst exit: the brackets close it, never short sales
    assert decision.figures.order_value == D("1500.00")
    assert decision.figures.concentration_after == {"AAPL": D("1500.00")}


# -- valuation on the risk model -----------------------------------------------------------------


def test_uncovered_short_call_is_stressed_up_and_unbounded() -> None:
    call = "AAPL  261218C00200000"
    snapshot = with_quotes(account_a(), quote(call, "0.95", "1.05"))

    decision = decide(sto(call, 1, "1.00", OPT), snapshot, [P])

    # S_hi = strike 200 + S0 150 = 350: 100 x (350 - 200) - the 1.00 mark x 100 = 14,900.00
    assert decision.codes == (Code.MAX_SINGLE_TRADE,)
    aapl = decision.figures.groups["AAPL"]
    assert aapl.risk_after == D("14900.00")
    assert aapl.unbounded
    assert aapl.worst_case == "AAPL at 350.00 on 2026-12-18 (unbounded above)"
    assert decision.figures.order_value == D("14900.00")


def test_short_call_covered_by_a_held_long_call_is_a_vertical() -> None:
    c610 = "SPY   261218C00610000"
    snapshot = with_quotes(account_a(), quote(c610, "3.10", "3.20"))

    decision = decide(sto(c610, 2, "3.15", OPT), snapshot, [P])

    # +2 600C (4.15) -2 610C (3.15): all lost below 600: 2 x (4.15 - 3.15) x 100 = 200.00
    assert decision.allowed
    spy = decision.figures.groups["SPY"]
    assert (spy.risk_before, spy.risk_after) == (D("830.00"), D("200.00"))
    assert not spy.unbounded
    assert decision.figures.order_value == D(0)


def test_option_without_an_instrument_is_unpriceable() -> None:
    call = "QQQ   260116C00520000"
    snapshot = account_a(
        quotes={
            **account_a().quotes,
            call: quote(call, "4.90", "5.10"),
            "QQQ": quote("QQQ", "519", "521"),
        }
    )

    decision = decide(sto(call, 1, "5", OPT), snapshot, [P])

    assert decision.codes == (Code.PRICE_UNAVAILABLE,)
    assert decision.message == (
        "price_unavailable: QQQ   260116C00520000: instrument unknown "
        "(no group or contract multiplier)"
    )


def test_option_without_an_underlying_quote_is_unpriceable() -> None:
    call = "QQQ   260116C00520000"
    snapshot = with_quotes(account_a(), quote(call, "4.90", "5.10"))

    decision = decide(sto(call, 1, "5", OPT), snapshot, [P])

    assert decision.codes == (Code.PRICE_UNAVAILABLE,)
    assert decision.message == "price_unavailable: QQQ: no quote"
    assert decision.figures.groups["QQQ"].risk_after is None
    assert decision.figures.order_value is None


def test_iron_condor_risks_its_wider_wing_minus_the_credit() -> None:
    snapshot = with_quotes(
        account_a(),
        quote("SPY   261218P00470000", "1.15", "1.25"),
        quote("SPY   261218P00480000", "2.95", "3.05"),
        quote("SPY   261218C00520000", "11.90", "12.10"),
        quote("SPY   261218C00535000", "11.70", "11.90"),
    )
    condor = order(
        leg("SPY   261218P00470000", 1, "Buy to Open", OPT),
        leg("SPY   261218P00480000", 1, "Sell to Open", OPT),
        leg("SPY   261218C00520000", 1, "Sell to Open", OPT),
        leg("SPY   261218C00535000", 1, "Buy to Open", OPT),
        price="2.00",
        effect="Credit",
    )

    decision = decide(condor, snapshot, [P])

    # credit at mid (3.00 - 1.20) + (12.00 - 11.80) = 2.00; the call wing (15 wide) is the
    # worse: 1,500 - 200 = 1,300.00, lost between 535 and 600, where the 2 held 600 calls
    # (same expiry, same bucket) are worthless
    assert decision.allowed
    spy = decision.figures.groups["SPY"]
    assert (spy.risk_before, spy.risk_after) == (D("830.00"), D("2130.00"))
    assert spy.worst_case == "SPY at 535.00 on 2026-12-18"
    assert decision.figures.order_value == D("1300.00")


def test_calendar_short_is_covered_by_the_later_long() -> None:
    dec, jan = "SPY   261218P00480000", "SPY   270115P00480000"
    snapshot = with_quotes(account_a(), quote(dec, "2.95", "3.05"), quote(jan, "9", "10"))
    calendar = order(
        leg(dec, 1, "Sell to Open", OPT), leg(jan, 1, "Buy to Open", OPT), price="1.00"
    )

    decision = decide(calendar, snapshot, [P])

    # the January put covers the December one (Reg-T): the pair risks its net mark
    # 9.50 - 3.00 = 6.50 x 100 = 650.00, more than the 1.00 debit paid at the limit
    assert decision.allowed
    spy = decision.figures.groups["SPY"]
    assert (spy.risk_before, spy.risk_after) == (D("830.00"), D("1480.00"))
    assert not spy.unbounded
    assert decision.figures.order_debit == D("100.00")
    assert decision.figures.order_value == D("650.00")


def test_future_needs_its_instrument() -> None:
    buy = order(leg("/ESZ6", 1, "Buy", "Future"))
    quotes = {**account_a().quotes, "/ESZ6": quote("/ESZ6", "6000", "6000.25")}

    unknown = decide(buy, account_a(quotes=quotes), [P])
    known = decide(buy, account_a(quotes=quotes, instruments=instruments(ES)), [P])

    assert unknown.codes == (Code.PRICE_UNAVAILABLE,)
    assert "/ESZ6: instrument unknown (no group or contract multiplier)" in unknown.message
    # long 1 x 50 at the 6,000.125 mid, all lost at 0; margined, so no debit
    assert known.figures.groups["/ES"].risk_after == D("300006.25")
    assert known.figures.order_value == D("300006.25")
    assert known.figures.order_debit == D(0)
    assert known.codes == (
        Code.MAX_SINGLE_TRADE,
        Code.MAX_PORTFOLIO_EXPOSURE,
        Code.MAX_POSITION_CONCENTRATION,
    )


def test_future_sell_closes_a_long_first() -> None:
    snapshot = account_a(
        positions=(Position("/ESZ6", InstrumentType.FUTURE, D(2), multiplier=D(50), mark=D(6000)),),
        instruments=instruments(ES),
    )

    decision = decide(order(leg("/ESZ6", 2, "Sell", "Future")), snapshot, [P])

    assert decision.risk_reducing
    assert decision.allowed
    es = decision.figures.groups["/ES"]
    assert (es.risk_before, es.risk_after) == (D("600000"), D(0))  # marked at the position mark


def test_position_price_falls_back_to_mark_then_close_price_else_unavailable() -> None:
    by_close = Position("XYZ", InstrumentType.EQUITY, D(10), close_price=D(7))
    no_price = Position("XYZ", InstrumentType.EQUITY, D(10), close_price=D(0))

    ok = decide(bto("AAPL", 1, "150"), account_a(positions=(by_close,)), [P])
    bad = decide(bto("AAPL", 1, "150"), account_a(positions=(no_price,)), [P])

    assert ok.figures.exposure_after == D(220)
    assert bad.codes == (Code.PRICE_UNAVAILABLE,)
    assert bad.message == "price_unavailable: XYZ: no quote"
    assert bad.figures.order_debit == D(150)  # still reported
    assert bad.figures.groups["AAPL"].risk_after == D("150.00")


def test_held_short_put_risks_strike_minus_premium_and_its_buy_back() -> None:
    short_put = Position(
        "SPY   261218P00480000", InstrumentType.EQUITY_OPTION, D(-1), D(100), mark=D(3)
    )

    decision = decide(bto("AAPL", 1, "150"), account_a(positions=(short_put,)), [P])

    # was valued at its strike notional 48,000.00: now 480 x 100 - the 3.00 mark x 100
    assert decision.figures.exposure_before == D("47700")
    assert decision.figures.exposure_after == D("47850.00")
    # free cash keeps what buying the put back costs: 60,000 - 300 - 150
    assert decision.figures.cash_after == D("59550")


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

    decision = decide(o, account_a(), [P])

    assert decision.figures.order_value == D(500)
    assert decision.figures.cash_after == D(59500)


def test_buy_stop_pays_at_least_its_trigger() -> None:
    o = parse_order(
        {
            "order-type": "Stop",
            "time-in-force": "Day",
            "stop-trigger": "200",
            "legs": [leg("AAPL", 10, "Buy to Open")],
        }
    )

    decision = decide(o, account_a(), [P])

    assert decision.figures.order_debit == D(2000)
    assert decision.figures.order_value == D(2000)  # more than 10 x 150.00 of risk


def test_short_sale_is_valued_at_its_stressed_risk_never_at_its_limit() -> None:
    no_collar = protection_p(price_collar_equity_percentage=None)
    decision = decide(sto("AAPL", 100, "0.01"), account_a(), [no_collar])

    assert decision.codes == (Code.MAX_SINGLE_TRADE,)
    assert decision.figures.order_debit == D(0)
    assert decision.figures.order_value == D("15000.00")  # 100 x (300.00 - 150.00)


# -- the decision as data ------------------------------------------------------------------------


def test_decision_as_dict_is_json_ready() -> None:
    decision = decide(bto("AAPL", 1000, "150.00"), account_a(), [P])

    data = decision.as_dict()

    json.dumps(data)
    assert data["verdict"] == "reject"
    assert data["risk_reducing"] is False
    assert data["figures"]["order_value"] == "150000.00"
    assert data["figures"]["groups"]["AAPL"] == {
        "risk_before": "0",
        "risk_after": "150000.00",
        "unbounded": False,
        "worst_case": "AAPL at 0.00",
    }
    assert data["violations"][0]["code"] == "max_single_trade"
    assert decision.message.startswith("max_single_trade: order value 150,000.00")


def test_allowed_decision_message() -> None:
    decision = decide(bto("AAPL", 1, "150.00"), account_a(), [P])

    assert decision.message == "allowed"
    assert decision.as_dict()["trigger_stop"] is None
