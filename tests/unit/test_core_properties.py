"""Hypothesis: the parser fails only with its own error; evaluation never raises and is
monotonic in quantity for opening orders."""

from __future__ import annotations

import contextlib
import json
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gatekeeper.core.codes import Code
from gatekeeper.core.errors import OrderParseError
from gatekeeper.core.parse import parse_complex_order_bytes, parse_order, parse_order_bytes
from tests.unit.builders import account_a, decide, leg, order, protection_p

D = Decimal
SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
SIZING = {
    Code.MAX_SINGLE_TRADE,
    Code.CASH_RESERVE,
    Code.MAX_PORTFOLIO_EXPOSURE,
    Code.MAX_POSITION_CONCENTRATION,
}

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["Limit", "Market", "Buy to Open", "Equity", "AAPL", "1.5", "-1", "NaN"]),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(
            st.sampled_from(
                [
                    "order-type",
                    "time-in-force",
                    "price",
                    "price-effect",
                    "legs",
                    "symbol",
                    "quantity",
                    "action",
                    "instrument-type",
                    "type",
                    "orders",
                    "trigger-order",
                    "x",
                ]
            ),
            children,
            max_size=8,
        ),
    ),
    max_leaves=30,
)


@SETTINGS
@given(json_values)
def test_arbitrary_json_only_raises_the_parsers_error(value: Any) -> None:
    raw = json.dumps(value).encode()
    for parse in (parse_order_bytes, parse_complex_order_bytes):
        with contextlib.suppress(OrderParseError):
            parse(raw)


@SETTINGS
@given(st.binary(max_size=200))
def test_arbitrary_bytes_only_raise_the_parsers_error(raw: bytes) -> None:
    with contextlib.suppress(OrderParseError):
        parse_order_bytes(raw)


@SETTINGS
@given(
    quantity=st.one_of(
        st.integers(), st.text(max_size=12), st.floats(), st.decimals(allow_nan=True)
    ),
    price=st.one_of(st.integers(), st.text(max_size=12), st.floats(), st.decimals(allow_nan=True)),
)
def test_odd_numbers_in_a_valid_shape_only_raise_the_parsers_error(
    quantity: object, price: object
) -> None:
    body = {
        "order-type": "Limit",
        "time-in-force": "Day",
        "price": price,
        "price-effect": "Debit",
        "legs": [leg("AAPL", 1, "Buy to Open") | {"quantity": quantity}],
    }
    try:
        parsed = parse_order(body)
    except OrderParseError:
        return
    assert parsed.legs[0].quantity is not None
    assert D(0) < parsed.legs[0].quantity <= D(1_000_000)


actions = st.sampled_from(["Buy to Open", "Sell to Open", "Buy to Close", "Sell to Close"])
symbols = st.sampled_from(["AAPL", "SPY", "TQQQ", "MSFT"])
option_symbols = st.sampled_from(
    ["SPY   261218C00600000", "SPY   261218P00480000", "SPY   261218P00470000"]
)


@SETTINGS
@given(
    equity=st.lists(st.tuples(symbols, st.integers(1, 5000), actions), min_size=1, max_size=1),
    options=st.lists(
        st.tuples(option_symbols, st.integers(1, 50), actions), max_size=3, unique_by=lambda t: t[0]
    ),
    price=st.one_of(st.none(), st.decimals(min_value=0, max_value=1000, places=2)),
    nlv=st.decimals(min_value=-1000, max_value=10**7, places=2),
    trades=st.integers(0, 100),
)
def test_evaluation_never_raises_for_valid_inputs(
    equity: list[tuple[str, int, str]],
    options: list[tuple[str, int, str]],
    price: Decimal | None,
    nlv: Decimal,
    trades: int,
) -> None:
    legs = [leg(s, q, a) for s, q, a in equity] + [
        leg(s, q, a, "Equity Option") for s, q, a in options
    ]
    o = order(*legs[:4], price=None if price is None else str(price))
    decision = decide(o, account_a(nlv=nlv), [protection_p()], trades)
    assert decision.allowed == (not decision.violations)


@SETTINGS
@given(
    symbol=symbols,
    action=actions,
    quantity=st.integers(1, 3000),
    extra=st.integers(1, 3000),
    price=st.one_of(st.none(), st.decimals(min_value=1, max_value=500, places=2)),
)
def test_more_quantity_never_turns_a_sizing_reject_into_an_allow(
    symbol: str, action: str, quantity: int, extra: int, price: Decimal | None
) -> None:
    text = None if price is None else str(price)
    effect = "Debit" if action.startswith("Buy") else "Credit"
    small = order(leg(symbol, quantity, action), price=text, effect=effect)
    large = order(leg(symbol, quantity + extra, action), price=text, effect=effect)
    p = [protection_p()]

    small_codes = set(decide(small, account_a(), p).codes)
    large_codes = set(decide(large, account_a(), p).codes)

    assert small_codes & SIZING <= large_codes
