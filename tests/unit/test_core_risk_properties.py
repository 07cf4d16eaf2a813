"""Properties of ``Risk(group)`` (risk-model.md section 3), and proof that each one catches a
model broken on purpose (the mutants at the end must make the property fail)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gatekeeper.core import risk
from gatekeeper.core.instruments import Instrument
from gatekeeper.core.placement import Bucket, Valued, best_placement
from gatekeeper.core.risk import GroupRisk, Holding, group_risk
from gatekeeper.core.symbols import InstrumentType, OptionInfo, OptionKind

D = Decimal
STRESS = D(100)
DEC, JAN, MAR = date(2026, 12, 18), date(2027, 1, 15), date(2027, 3, 19)
RiskFn = Callable[..., GroupRisk]
SETTINGS = settings(
    max_examples=300,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)

STOCK = Instrument("XYZ", InstrumentType.EQUITY, "XYZ", D(1), "XYZ", InstrumentType.EQUITY)


def contract(kind: OptionKind, strike: int, expiry: date = DEC) -> Instrument:
    symbol = f"XYZ {expiry:%y%m%d}{kind.value}{strike:08d}"
    info = OptionInfo("XYZ", expiry, kind, D(strike))
    return Instrument(
        symbol, InstrumentType.EQUITY_OPTION, "XYZ", D(100), "XYZ", InstrumentType.EQUITY, info
    )


quantities = st.integers(-5, 5).filter(bool)
strikes = st.integers(1, 200)
marks = st.integers(1, 3000).map(lambda cents: D(cents) / 100)
references = st.integers(1, 200).map(D)


def options(expiries: Sequence[date]) -> st.SearchStrategy[Holding]:
    return st.builds(
        lambda kind, strike, expiry, quantity, mark: Holding(
            contract(kind, strike, expiry), D(quantity), mark
        ),
        st.sampled_from(list(OptionKind)),
        strikes,
        st.sampled_from(list(expiries)),
        quantities,
        marks,
    )


stock = st.builds(lambda q: Holding(STOCK, D(q * 100), D(0)), quantities)


def groups(expiries: Sequence[date]) -> st.SearchStrategy[list[Holding]]:
    return st.lists(st.one_of(options(expiries), stock), min_size=1, max_size=6)


def priced(holdings: list[Holding], reference: Decimal) -> list[Holding]:
    """Stock is marked at the reference price (its value now)."""
    return [
        Holding(h.instrument, h.quantity, reference) if h.instrument.option is None else h
        for h in holdings
    ]


def strikes_of(holdings: Iterable[Holding]) -> set[Decimal]:
    return risk.strikes_of(holdings)


def brute_force(holdings: list[Holding], reference: Decimal) -> Decimal:
    """The largest loss on every integer price of [0, S_hi] (strikes are integers)."""
    top = max([reference, *strikes_of(holdings)]) + reference * STRESS / 100
    marks_now = sum((h.mark_value for h in holdings), D(0))
    worst = max(
        marks_now - sum((h.value_at(D(p)) for h in holdings), D(0)) for p in range(int(top) + 1)
    )
    return max(worst, D(0))


# -- the properties, each against a risk function -------------------------------------------------


def prop_exact_single_expiry(fn: RiskFn) -> Callable[[], None]:
    @SETTINGS
    @given(groups([DEC]), references)
    def check(holdings: list[Holding], reference: Decimal) -> None:
        holdings = priced(holdings, reference)
        assert fn("XYZ", holdings, reference, STRESS).risk == brute_force(holdings, reference)

    return check


def prop_long_adds_at_most_its_mark(fn: RiskFn) -> Callable[[], None]:
    @SETTINGS
    @given(groups([DEC, JAN, MAR]), options([DEC, JAN, MAR]), references)
    def check(holdings: list[Holding], extra: Holding, reference: Decimal) -> None:
        holdings = priced(holdings, reference)
        long = Holding(extra.instrument, abs(extra.quantity), extra.mark)
        shared = strikes_of([*holdings, long])
        before = fn("XYZ", holdings, reference, STRESS, shared).risk
        after = fn("XYZ", [*holdings, long], reference, STRESS, shared).risk
        assert after <= before + long.mark_value

    return check


def prop_buying_back_a_short_costs_at_most_its_mark(fn: RiskFn) -> Callable[[], None]:
    @SETTINGS
    @given(groups([DEC, JAN, MAR]), options([DEC, JAN, MAR]), references)
    def check(holdings: list[Holding], extra: Holding, reference: Decimal) -> None:
        holdings = priced(holdings, reference)
        short = Holding(extra.instrument, -abs(extra.quantity), extra.mark)
        shared = strikes_of([*holdings, short])
        with_short = fn("XYZ", [*holdings, short], reference, STRESS, shared).risk
        without = fn("XYZ", holdings, reference, STRESS, shared).risk
        assert without <= with_short - short.mark_value  # mark_value < 0: the cost to buy back

    return check


def prop_risk_scales_with_quantity(fn: RiskFn) -> Callable[[], None]:
    @SETTINGS
    @given(groups([DEC, JAN, MAR]), references, st.integers(2, 7))
    def check(holdings: list[Holding], reference: Decimal, k: int) -> None:
        holdings = priced(holdings, reference)
        scaled = [Holding(h.instrument, h.quantity * k, h.mark) for h in holdings]
        assert (
            fn("XYZ", scaled, reference, STRESS).risk
            == k * fn("XYZ", holdings, reference, STRESS).risk
        )

    return check


def prop_reverse_calendar_is_never_covered(fn: RiskFn) -> Callable[[], None]:
    @SETTINGS
    @given(st.sampled_from(list(OptionKind)), strikes, strikes, marks, marks, st.integers(1, 5))
    def check(kind: OptionKind, k1: int, k2: int, m1: Decimal, m2: Decimal, q: int) -> None:
        reference = D(100)
        near = Holding(contract(kind, k1, DEC), D(q), m1)
        far = Holding(contract(kind, k2, JAN), D(-q), m2)
        shared = strikes_of([near, far])
        together = fn("XYZ", [near, far], reference, STRESS, shared).risk
        apart = sum((fn("XYZ", [h], reference, STRESS, shared).risk for h in (near, far)), D(0))
        assert together == apart

    return check


PROPERTIES = {
    "exact": prop_exact_single_expiry,
    "long": prop_long_adds_at_most_its_mark,
    "buyback": prop_buying_back_a_short_costs_at_most_its_mark,
    "scaling": prop_risk_scales_with_quantity,
    "reverse_calendar": prop_reverse_calendar_is_never_covered,
}


@pytest.mark.parametrize("name", list(PROPERTIES))
def test_property_holds_for_the_model(name: str) -> None:
    PROPERTIES[name](group_risk)()


def test_a_calendar_is_covered_by_its_later_long() -> None:
    # the counterpart of the reverse calendar: same strike, long outlives the short
    short = Holding(contract(OptionKind.CALL, 100, DEC), D(-1), D("2.00"))
    long = Holding(contract(OptionKind.CALL, 100, JAN), D(1), D("3.00"))

    calendar = group_risk("XYZ", [short, long], D(100), STRESS)

    assert calendar.risk == D("100.00")  # the net debit: 300 - 200
    assert not calendar.unbounded


def every_placement(holdings: list[Holding], reference: Decimal, extra: set[Decimal]) -> GroupRisk:
    """``Risk(group)`` by the general placement search (buckets summed as ``Bucket`` values),
    which ``group_risk`` short-cuts when no long can move."""
    live = [h for h in holdings if h.quantity != 0]
    prices = risk.scenario_prices(reference, strikes_of(live) | extra, STRESS)
    legs = [(h, Valued(*risk.payoff(h, prices))) for h in live]
    linear = [leg for _, leg in legs if leg.expiry is None]
    expiries = sorted({leg.expiry for _, leg in legs if leg.expiry is not None})
    if not expiries:
        return risk._result("XYZ", reference, prices, [Bucket.of(linear, len(prices))], [None])
    position = {expiry: index for index, expiry in enumerate(expiries)}
    fixed = [Bucket.empty(len(prices)) for _ in expiries]
    movable = []
    for holding, leg in legs:
        if leg.expiry is None:
            continue
        own = position[leg.expiry]
        options = risk.movable_to(holding, own, len(expiries))
        if options:
            movable.append((leg, options))
        else:
            fixed[own] = fixed[own].plus(leg)
    line = Bucket.of(linear, len(prices)) if linear else None
    best = best_placement(fixed, movable, line)
    return risk._result("XYZ", reference, prices, best, expiries)


@SETTINGS
@given(groups([DEC, JAN, MAR]), references, st.sets(strikes, max_size=3))
def test_the_single_placement_shortcut_gives_the_search_result_digit_for_digit(
    holdings: list[Holding], reference: Decimal, extra: set[int]
) -> None:
    holdings = priced(holdings, reference)
    wider = {D(k) for k in extra}
    found = group_risk("XYZ", holdings, reference, STRESS, wider)
    assert repr(found) == repr(every_placement(holdings, reference, wider))


# -- mutants: a model broken on purpose must fail the property ------------------------------------


def _scenarios_without_strikes(
    reference: Decimal, strikes: Iterable[Decimal], stress: Decimal
) -> tuple[Decimal, ...]:
    return (D(0), reference, max([reference, *strikes]) + reference * stress / 100)


_payoff = risk.payoff  # the model's own formulas, wrapped by the mutants below


def _value_ignoring_short_sign(
    holding: Holding, prices: Sequence[Decimal]
) -> tuple[date | None, Decimal, tuple[Decimal, ...], Decimal, bool]:
    # a short option valued as if it were long: buying it back looks like it adds risk
    expiry, mark, values, upside, short_call = _payoff(holding, prices)
    if holding.instrument.option is not None and holding.quantity < 0:
        values = tuple(-v for v in values)
    return expiry, mark, values, upside, short_call


def _mark_per_contract(
    holding: Holding, prices: Sequence[Decimal]
) -> tuple[date | None, Decimal, tuple[Decimal, ...], Decimal, bool]:
    # a plausible slip: the mark counted once per holding, not per contract held
    expiry, _, values, upside, short_call = _payoff(holding, prices)
    sign = 1 if holding.quantity > 0 else -1
    return expiry, sign * holding.mark * holding.instrument.multiplier, values, upside, short_call


def _any_bucket(holding: Holding, own: int, buckets: int) -> list[int]:
    # a long may be counted in any bucket, later ones too: a reverse calendar gets covered
    if holding.quantity > 0:
        return [own, *(i for i in range(buckets) if i != own)]
    return []


def _ignore_shared_strikes(
    group: str, holdings: Sequence[Holding], reference: Decimal, stress: Decimal, *_: object
) -> GroupRisk:
    return group_risk(group, holdings, reference, stress)


MUTANTS: list[tuple[str, str, object]] = [
    ("exact", "scenario_prices", _scenarios_without_strikes),
    ("buyback", "payoff", _value_ignoring_short_sign),
    ("scaling", "payoff", _mark_per_contract),
    ("reverse_calendar", "movable_to", _any_bucket),
]


@pytest.mark.parametrize(("name", "target", "broken"), MUTANTS, ids=[m[0] for m in MUTANTS])
def test_property_fails_on_a_broken_model(
    name: str, target: str, broken: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner: object = risk.Holding if target.startswith("Holding.") else risk
    monkeypatch.setattr(owner, target.rsplit(".", 1)[-1], broken)

    with pytest.raises(AssertionError):
        PROPERTIES[name](group_risk)()


def test_long_property_fails_when_before_and_after_use_different_scenarios() -> None:
    # judged on its own strikes only, a far long call moves S_hi and looks like added risk
    with pytest.raises(AssertionError):
        prop_long_adds_at_most_its_mark(_ignore_shared_strikes)()
