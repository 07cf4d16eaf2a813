"""The prepared-snapshot path gives exactly the general path's facts, and its cache never
serves a changed holding, a changed price, other risk parameters or an aged quote.

Facts are compared by ``repr``: every Decimal's digits and exponent, every problem and its
order, every group's risk and worst case.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gatekeeper.core import prepared as cache
from gatekeeper.core.facts import account_facts
from gatekeeper.core.facts_record import Facts
from gatekeeper.core.holdings import OrderInput
from gatekeeper.core.incremental import incremental_facts
from gatekeeper.core.order import Order
from gatekeeper.core.parse import parse_complex_order
from gatekeeper.core.pricing import Prices
from gatekeeper.core.snapshot import (
    AccountSnapshot,
    Position,
    Quote,
    RiskParameters,
    WorkingOrder,
)
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
)

D = Decimal
PARAMS = RiskParameters()
SETTINGS = settings(
    max_examples=250,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
ROOTS = ("AAA", "BBB", "CCC")
PRICES = {"AAA": 100, "BBB": 50, "CCC": 20}


def _option_symbol(root: str, expiry: str, kind: str, strike: int) -> str:
    return f"{root:<6}{expiry}{kind}{strike * 1000:08d}"


OPTIONS = [
    _option_symbol(root, expiry, kind, PRICES[root] * pct // 100)
    for root in ROOTS
    for expiry in ("261218", "270115")
    for kind in ("C", "P")
    for pct in (90, 100, 150)
]
SYMBOLS = [*ROOTS, *OPTIONS]


def _kind(symbol: str) -> str:
    return "Equity" if symbol in ROOTS else "Equity Option"


def _root(symbol: str) -> str:
    return symbol if symbol in ROOTS else symbol[:6].strip()


quantities = st.integers(-20, 20).map(D)
legs = st.lists(
    st.tuples(
        st.sampled_from(SYMBOLS),
        st.integers(1, 15),
        st.sampled_from(["Buy to Open", "Sell to Open", "Buy to Close", "Sell to Close"]),
    ),
    min_size=1,
    max_size=4,
    unique_by=lambda t: t[0],
)


@st.composite
def orders(draw: st.DrawFn) -> Order:
    chosen = draw(legs)
    price = draw(st.one_of(st.none(), st.integers(1, 300).map(lambda c: f"{c / 100:.2f}")))
    effect = draw(st.sampled_from(["Debit", "Credit"]))
    return order(*(leg(s, q, a, _kind(s)) for s, q, a in chosen), price=price, effect=effect)


@st.composite
def requests(draw: st.DrawFn) -> OrderInput:
    if draw(st.integers(0, 4)) > 0:
        return draw(orders())
    first, second = draw(orders()), draw(orders())
    kind = draw(st.sampled_from(["OCO", "OTO"]))
    body: dict[str, Any] = {"type": kind}
    dump = {"by_alias": True, "exclude_none": True, "mode": "json"}
    if kind == "OCO":
        body["orders"] = [first.model_dump(**dump), second.model_dump(**dump)]  # type: ignore[arg-type]
    else:
        body["trigger-order"] = first.model_dump(**dump)  # type: ignore[arg-type]
        body["orders"] = [second.model_dump(**dump)]  # type: ignore[arg-type]
    return parse_complex_order(body)


@st.composite
def snapshots(draw: st.DrawFn) -> AccountSnapshot:
    held = draw(st.lists(st.sampled_from(SYMBOLS), max_size=10))
    positions = []
    for symbol in held:
        quantity = draw(quantities)
        if symbol in ROOTS:
            positions.append(Position(symbol, InstrumentType.EQUITY, quantity * 10))
        else:
            mark = draw(st.one_of(st.none(), st.just(D("1.25"))))
            positions.append(
                Position(
                    symbol,
                    InstrumentType.EQUITY_OPTION,
                    quantity,
                    D(100),
                    mark=mark,
                    underlying=_root(symbol),
                )
            )
    quotes: dict[str, Quote] = {}
    for symbol in SYMBOLS:
        state = draw(st.sampled_from(["ok"] * 8 + ["none", "crossed", "aged"]))
        mid = PRICES[symbol] if symbol in ROOTS else int(symbol[-8:]) // 1000 % 7 + 1
        q = quote(symbol, f"{mid - 0.05:.2f}", f"{mid + 0.05:.2f}")
        if state == "crossed":
            q = replace(q, bid=q.ask, ask=q.bid)
        elif state == "aged":
            q = replace(q, updated_at=NOW - timedelta(seconds=900))
        elif draw(st.booleans()):
            q = replace(q, updated_at=NOW - timedelta(seconds=5))
        if state != "none":
            quotes[symbol] = q
    known = [s for s in OPTIONS if draw(st.integers(0, 9)) > 0]
    working = [
        WorkingOrder(
            draw(orders()), order_id=f"w{n}", complex_order_id=draw(st.sampled_from([None, "c1"]))
        )
        for n in range(draw(st.integers(0, 3)))
    ]
    return AccountSnapshot(
        account_number="5WT00009",
        nlv=D(100_000),
        cash_balance=D(60_000),
        start_of_day_nlv=D(100_000),
        fetched_at=NOW,
        positions=tuple(positions),
        working_orders=tuple(working),
        quotes=quotes,
        instruments=instruments(*(option(s) for s in known)),
    )


def both(
    request: OrderInput,
    snapshot: AccountSnapshot,
    in_flight: list[Order],
    replaces: str | None = None,
) -> tuple[Facts, Facts | None]:
    """(general path, prepared path or ``None`` when the snapshot cannot be prepared)."""
    kwargs: dict[str, Any] = {"in_flight": in_flight, "replaces_order_id": replaces}
    general = account_facts(request, snapshot, PARAMS, Prices(snapshot, PARAMS, NOW), **kwargs)
    ready = cache.prepare(snapshot, PARAMS, NOW)
    if ready is None:
        return general, None
    prices = Prices(snapshot, PARAMS, NOW, held=ready.held, mids=ready.mids)
    return general, incremental_facts(request, ready, prices, **kwargs)


PREPARED = {"count": 0}


@SETTINGS
@given(
    snapshots(),
    requests(),
    st.lists(orders(), max_size=2),
    st.sampled_from([None, "w0", "w1"]),
)
def test_prepared_path_gives_the_general_paths_facts(
    snapshot: AccountSnapshot,
    request: OrderInput,
    in_flight: list[Order],
    replaces: str | None,
) -> None:
    general, fast = both(request, snapshot, in_flight, replaces)
    if fast is not None:
        PREPARED["count"] += 1
        assert repr(fast) == repr(general)


def test_the_equivalence_property_ran_on_prepared_snapshots() -> None:
    # the property above must not pass by never preparing anything
    PREPARED["count"] = 0
    test_prepared_path_gives_the_general_paths_facts()
    assert PREPARED["count"] >= 100


def test_a_far_strike_in_the_order_widens_the_held_groups_scenarios() -> None:
    # a held naked call is stressed to S_hi = the largest strike + S0: a far call bought
    # moves S_hi, and the group's risk before the order is judged on the same prices
    held = _option_symbol("AAA", "261218", "C", 100)
    far = _option_symbol("AAA", "261218", "C", 150)
    snapshot = AccountSnapshot(
        account_number="5WT00009",
        nlv=D(100_000),
        cash_balance=D(60_000),
        start_of_day_nlv=D(100_000),
        fetched_at=NOW,
        positions=(Position(held, InstrumentType.EQUITY_OPTION, D(-1), D(100), underlying="AAA"),),
        quotes={s: quote(s, "0.95", "1.05") for s in (held, far)}
        | {"AAA": quote("AAA", "99.95", "100.05")},
        instruments=instruments(option(far)),
    )
    buy = order(leg(far, 1, "Buy to Open", "Equity Option"), price="1.00")
    general, fast = both(buy, snapshot, [])
    assert fast is not None
    assert general.groups[0].before is not None
    assert general.groups[0].before.risk == D("14900.00")  # (250 - 100) x 100 - 100
    assert repr(fast) == repr(general)


# -- the cache never serves a stale entry -------------------------------------------------------

SPY_PUT = "SPY   261218P00450000"


def account(quantity: int = -2, put: tuple[str, str] = ("1.95", "2.05")) -> AccountSnapshot:
    return AccountSnapshot(
        account_number="5WT00009",
        nlv=D(100_000),
        cash_balance=D(60_000),
        start_of_day_nlv=D(100_000),
        fetched_at=NOW,
        positions=(
            Position(SPY_PUT, InstrumentType.EQUITY_OPTION, D(quantity), D(100), underlying="SPY"),
        ),
        quotes={
            "SPY": quote("SPY", "499.90", "500.10"),
            "AAPL": quote("AAPL", "149.90", "150.10"),
            SPY_PUT: quote(SPY_PUT, *put),
        },
    )


def spy_risk(snapshot: AccountSnapshot, **context: Any) -> Decimal | None:
    decision = decide(bto("AAPL", 1, "150.00"), snapshot, [protection_p()], **context)
    return decision.figures.exposure_before


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    cache.clear_cache()


def test_a_changed_holding_is_valued_again() -> None:
    first = account(quantity=-2)
    assert spy_risk(first) == D("89600.00")  # 2 x (450 - 2.00) x 100
    assert spy_risk(first) == D("89600.00")  # served from the cache

    assert spy_risk(replace(first, positions=account(quantity=-3).positions)) == D("134400.00")


def test_a_changed_price_is_valued_again() -> None:
    first = account()
    assert spy_risk(first) == D("89600.00")

    moved = replace(first, quotes={**first.quotes, SPY_PUT: quote(SPY_PUT, "2.95", "3.05")})
    assert spy_risk(moved) == D("89400.00")  # 2 x (450 - 3.00) x 100


def test_other_risk_parameters_are_valued_again() -> None:
    first = account()
    assert spy_risk(first) is not None
    strict = RiskParameters(max_spread_percentage=D(1))  # the put's 5 % spread is refused
    decision = decide(bto("AAPL", 1, "150.00"), first, [protection_p()], params=strict)
    assert decision.figures.exposure_before is None  # a position without a price


def test_the_snapshots_mappings_cannot_change_under_the_cache() -> None:
    quotes = dict(account().quotes)
    snapshot = replace(account(), quotes=quotes)
    assert spy_risk(snapshot) == D("89600.00")

    quotes[SPY_PUT] = quote(SPY_PUT, "2.95", "3.05")  # the caller's dict, not the snapshot's
    assert snapshot.quotes[SPY_PUT].bid == D("1.95")
    with pytest.raises(TypeError):
        snapshot.quotes[SPY_PUT] = quote(SPY_PUT, "2.95", "3.05")  # type: ignore[index]
    assert spy_risk(snapshot) == D("89600.00")


def test_a_quote_that_ages_is_not_served_from_the_cache() -> None:
    base = account()
    dated = replace(base.quotes[SPY_PUT], updated_at=NOW - timedelta(seconds=200))
    snapshot = replace(base, quotes={**base.quotes, SPY_PUT: dated})
    assert spy_risk(snapshot) == D("89600.00")  # 200 s old: usable

    later = decide(
        bto("AAPL", 1, "150.00"), snapshot, [protection_p()], now=NOW + timedelta(seconds=101)
    )
    assert later.figures.exposure_before is None  # 301 s old: the put has no price
    assert spy_risk(snapshot) == D("89600.00")  # and at the earlier time it is usable again


def test_an_aged_quote_met_earlier_is_judged_again() -> None:
    base = account()
    dated = replace(base.quotes[SPY_PUT], updated_at=NOW - timedelta(seconds=400))
    held = replace(base.positions[0], mark=D("9.00"))  # the fallback when the quote is aged
    snapshot = replace(base, positions=(held,), quotes={**base.quotes, SPY_PUT: dated})
    assert spy_risk(snapshot) == D("88200.00")  # aged: 2 x (450 - 9.00) x 100

    earlier = decide(
        bto("AAPL", 1, "150.00"), snapshot, [protection_p()], now=NOW - timedelta(seconds=200)
    )
    assert earlier.figures.exposure_before == D("89600.00")  # 200 s old then: its own mid


def test_a_cached_evaluation_decides_as_an_uncached_one() -> None:
    snapshot = account()
    new = bto("AAPL", 1, "150.00")
    cold = decide(new, snapshot, [protection_p()])
    warm = decide(new, snapshot, [protection_p()])
    cache.clear_cache()
    again = decide(new, snapshot, [protection_p()])
    assert repr(cold) == repr(warm) == repr(again)


def test_a_held_groups_risk_on_one_orders_strikes_is_not_served_for_anothers() -> None:
    # the prepared snapshot remembers a held group's risk on an order's strikes; an order on
    # other strikes (here a higher S_hi for the held naked call) is judged on its own
    held = _option_symbol("AAA", "261218", "C", 100)
    far, farther = (_option_symbol("AAA", "261218", "C", k) for k in (150, 200))
    snapshot = AccountSnapshot(
        account_number="5WT00009",
        nlv=D(100_000),
        cash_balance=D(60_000),
        start_of_day_nlv=D(100_000),
        fetched_at=NOW,
        positions=(Position(held, InstrumentType.EQUITY_OPTION, D(-1), D(100), underlying="AAA"),),
        quotes={s: quote(s, "0.95", "1.05") for s in (held, far, farther)}
        | {"AAA": quote("AAA", "99.95", "100.05")},
        instruments=instruments(option(far), option(farther)),
    )

    def before(symbol: str) -> Decimal | None:
        buy = order(leg(symbol, 1, "Buy to Open", "Equity Option"), price="1.00")
        return decide(buy, snapshot, [protection_p()]).figures.groups["AAA"].risk_before

    assert before(far) == D("14900.00")  # S_hi 250: (250 - 100) x 100 - 100
    assert before(far) == D("14900.00")  # remembered
    assert before(farther) == D("19900.00")  # S_hi 300, not the remembered 250
    cache.clear_cache()
    assert before(farther) == D("19900.00")


def test_an_equal_snapshot_built_again_is_served_from_the_cache() -> None:
    # The order path builds a new snapshot object for every order of a warm account.
    first = account()
    again = replace(first, quotes=dict(first.quotes), positions=tuple(first.positions))
    assert again is not first
    one = cache.prepared(first, PARAMS, NOW)
    two = cache.prepared(again, PARAMS, NOW)
    assert one is not None
    assert two is not None
    assert two.positions is one.positions  # valued once
    assert two.snapshot is again  # handed out with the snapshot asked about


def test_what_the_valuation_did_not_read_comes_from_the_snapshot_asked_about() -> None:
    first = account()
    assert spy_risk(first) == D("89600.00")
    working = WorkingOrder(bto("AAPL", 100, "150.00"), order_id="w1")
    poorer = replace(first, cash_balance=D(1_000), working_orders=(working,), nlv=D(90_000))
    new = bto("AAPL", 1, "150.00")
    warm = decide(new, poorer, [protection_p()])
    cache.clear_cache()
    cold = decide(new, poorer, [protection_p()])
    assert repr(warm) == repr(cold)
    assert warm.figures.cash_balance == D(1_000)  # not the cached snapshot's 60,000
    assert warm.figures.cash_after is not None
    assert warm.figures.cash_after < 0  # the working order's 15,000 counts, too


def test_a_changed_instrument_of_a_held_symbol_is_valued_again() -> None:
    first = account()
    ready = cache.prepared(first, PARAMS, NOW)
    assert ready is not None
    other = replace(first, instruments=instruments(option(SPY_PUT, multiplier="10")))
    again = cache.prepared(other, PARAMS, NOW)
    assert again is not None
    assert again.positions is not ready.positions
    assert again.held[SPY_PUT].symbol == SPY_PUT
    assert again.positions[0].instrument.multiplier == D(10)
