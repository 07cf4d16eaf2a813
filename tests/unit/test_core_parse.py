"""Strict JSON and order parsing: both body forms, every type, and every rejection."""

from __future__ import annotations

import json
import random
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from gatekeeper.core.codes import ParseCode
from gatekeeper.core.errors import BodyTooLarge, InvalidJson, InvalidOrder, OrderParseError
from gatekeeper.core.jsonstrict import _check_depth, loads_strict
from gatekeeper.core.order import Action, ComplexType, OrderType, PriceEffect, TimeInForce
from gatekeeper.core.parse import (
    apply_replace,
    parse_complex_order,
    parse_complex_order_bytes,
    parse_live_order,
    parse_order,
    parse_order_bytes,
    parse_replace,
    parse_replace_bytes,
)
from gatekeeper.core.symbols import InstrumentType, OptionKind, guess_instrument_type
from tests.unit.builders import leg

D = Decimal

SPREAD = (
    b'{"order-type": "Limit", "time-in-force": "Day", "price": "2.15", "price-effect": "Debit",'
    b' "external-identifier": "bot7-000123", "source": "bot7/1.0", "behavior": "immediate",'
    b' "legs": ['
    b'  {"instrument-type": "Equity Option", "symbol": "QQQ   260116C00520000",'
    b'   "action": "Buy to Open", "quantity": 3},'
    b'  {"instrument-type": "Equity Option", "symbol": "QQQ   260116C00530000",'
    b'   "action": "Sell to Open", "quantity": "3"}]}'
)


def body(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "order-type": "Limit",
        "time-in-force": "Day",
        "price": "150.00",
        "price-effect": "Debit",
        "legs": [leg("AAPL", 10, "Buy to Open")],
    }
    base.update({k.replace("_", "-"): v for k, v in fields.items()})
    return {k: v for k, v in base.items() if v is not None}


# ---- strict JSON -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b'{"price": NaN}',
        b'{"price": Infinity}',
        b'{"price": -Infinity}',
        b'{"a": 1, "a": 2}',
        b'{"legs": [{"x": 1, "x": 1}]}',
        b"[1, 2]",
        b'"text"',
        b"1",
        b"null",
        b"",
        b"{",
        b'{"a": 1} trailing',
        b"\xff\xfe{}",
        b'\xef\xbb\xbf{"a": 1}',
        b'{"a": ' + b"1" * 100 + b"}",
    ],
)
def test_strict_json_rejects(raw: bytes) -> None:
    with pytest.raises(InvalidJson) as info:
        loads_strict(raw)
    assert info.value.code == ParseCode.INVALID_JSON


def test_strict_json_rejects_deep_nesting_before_parsing() -> None:
    raw = b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(InvalidJson, match="nested deeper than 8"):
        loads_strict(raw, max_bytes=1_000_000)


def test_strict_json_depth_counts_only_structure_not_brackets_in_strings() -> None:
    assert loads_strict(b'{"a": "[[[[[[[[[[[[[[[[\\"[[[["}') == {"a": '[[[[[[[[[[[[[[[["[[[['}


def test_strict_json_size_limit() -> None:
    with pytest.raises(BodyTooLarge) as info:
        loads_strict(b'{"a": "' + b"x" * 200 + b'"}', max_bytes=100)
    assert info.value.code == "payload_too_large"
    assert info.value.status == 413
    assert "x" * 10 not in info.value.message


def test_strict_json_floats_become_decimals() -> None:
    assert loads_strict(b'{"p": 0.1, "q": 3}') == {"p": D("0.1"), "q": 3}


# ---- TastyTrade form ---------------------------------------------------------------------


def test_dasherized_spread_with_unknown_keys_and_mixed_number_forms() -> None:
    order = parse_order_bytes(SPREAD)

    assert order.order_type is OrderType.LIMIT
    assert order.time_in_force is TimeInForce.DAY
    assert order.price == D("2.15")
    assert order.price_effect is PriceEffect.DEBIT
    assert [leg.quantity for leg in order.legs] == [D(3), D(3)]
    first = order.legs[0]
    assert first.instrument_type is InstrumentType.EQUITY_OPTION
    assert first.action is Action.BUY_TO_OPEN
    assert first.underlying == "QQQ"
    info = first.option
    assert info is not None
    assert (info.underlying, info.expiry, info.kind, info.strike) == (
        "QQQ",
        date(2026, 1, 16),
        OptionKind.CALL,
        D("520"),
    )
    assert order.units == D(3)


def test_occ_symbol_reads_root_strike_kind_expiry() -> None:
    order = parse_order(
        body(legs=[leg("SPY   261218C00600000", 1, "Buy to Open", "Equity Option")])
    )
    info = order.legs[0].option
    assert info is not None
    assert info.underlying == "SPY"
    assert info.strike == D("600.000")
    assert info.kind is OptionKind.CALL
    assert info.expiry == date(2026, 12, 18)


@pytest.mark.parametrize(
    ("kind", "symbol", "action", "underlying"),
    [
        ("Equity", "AAPL", "Buy to Open", "AAPL"),
        ("Equity", "BRK/B", "Sell to Close", "BRK/B"),
        ("Equity Option", "SPXW  261218P05000000", "Sell to Open", "SPXW"),
        ("Future", "/ESZ5", "Buy", "/ESZ5"),
        ("Future", "/ESZ5", "Sell to Close", "/ESZ5"),
        ("Future Option", "./ESZ5 E3AX5 251121P6000", "Buy to Open", "/ESZ5"),
        ("Cryptocurrency", "BTC/USD", "Buy to Open", "BTC/USD"),
    ],
)
def test_every_instrument_type(kind: str, symbol: str, action: str, underlying: str) -> None:
    order = parse_order(
        body(
            order_type="Market", price=None, price_effect=None, legs=[leg(symbol, 1, action, kind)]
        )
    )
    assert order.legs[0].instrument_type.value == kind
    assert order.legs[0].underlying == underlying


def test_future_option_strike_and_expiry() -> None:
    order = parse_order(
        body(legs=[leg("./ESZ5 E3AX5 251121P6000", 1, "Buy to Open", "Future Option")])
    )
    info = order.legs[0].option
    assert info is not None
    assert (info.underlying, info.strike, info.kind, info.expiry) == (
        "/ESZ5",
        D(6000),
        OptionKind.PUT,
        date(2025, 11, 21),
    )


@pytest.mark.parametrize(
    "fields",
    [
        {"order_type": "Limit"},
        {"order_type": "Market", "price": None, "price_effect": None},
        {"order_type": "Marketable Limit"},
        {"order_type": "Marketable Limit", "price": None, "price_effect": None},
        {"order_type": "Stop", "price": None, "price_effect": None, "stop_trigger": "160"},
        {"order_type": "Stop Limit", "stop_trigger": 149.5},
        {
            "order_type": "Notional Market",
            "price": None,
            "price_effect": None,
            "value": "250.00",
            "value_effect": "Debit",
            "legs": [{"instrument-type": "Equity", "symbol": "AAPL", "action": "Buy to Open"}],
        },
    ],
)
def test_every_order_type(fields: dict[str, Any]) -> None:
    order = parse_order(body(**fields))
    assert order.order_type.value == fields["order_type"]


@pytest.mark.parametrize(
    "tif", ["Day", "GTC", "Ext", "Ext Overnight", "GTC Ext", "GTC Ext Overnight", "IOC"]
)
def test_every_time_in_force(tif: str) -> None:
    assert parse_order(body(time_in_force=tif)).time_in_force.value == tif


def test_gtd_needs_a_date() -> None:
    assert parse_order(body(time_in_force="GTD", gtc_date="2026-12-31")).gtc_date == date(
        2026, 12, 31
    )
    with pytest.raises(InvalidOrder, match="gtc-date is required"):
        parse_order(body(time_in_force="GTD"))


def test_number_and_string_forms_are_equal() -> None:
    as_text = parse_order(body(price="150.5", legs=[leg("AAPL", "10", "Buy to Open")]))
    as_number = parse_order(body(price=D("150.5"), legs=[leg("AAPL", 10, "Buy to Open")]))
    assert as_text == as_number


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"price": "NaN"}, "price"),
        ({"price": "Infinity"}, "price"),
        ({"price": "1e5"}, "price: must be a plain decimal"),
        ({"price": True}, "price: must be a number, not a boolean"),
        ({"price": "-1.00"}, "price: must not be negative"),
        ({"price": D("1e10")}, "price: must not exceed"),
        ({"price": [1]}, "price"),
        ({"price": None}, "price is required for Limit"),
        ({"price_effect": None}, "price-effect is required"),
        ({"price_effect": "Both"}, "price-effect"),
        ({"legs": [leg("AAPL", 0, "Buy to Open")]}, "quantity must be greater than 0"),
        ({"legs": [leg("AAPL", -5, "Buy to Open")]}, "quantity must be greater than 0"),
        ({"legs": [leg("AAPL", 10_000_000, "Buy to Open")]}, "quantity must not exceed"),
        ({"legs": [leg("AAPL", True, "Buy to Open")]}, "quantity: must be a number"),
        ({"legs": [leg("AAPL", "ten", "Buy to Open")]}, "quantity"),
        ({"legs": [leg("AAPL", 1, "Buy to Hold")]}, "legs.0.action"),
        ({"legs": [leg("AAPL", 1, "buy to open")]}, "legs.0.action"),
        ({"legs": [leg("AAPL", 1, "Buy")]}, "only valid for futures"),
        ({"legs": [leg("aapl", 1, "Buy to Open")]}, "not a valid Equity symbol"),
        ({"legs": [leg("SPY261218C00600000", 1, "Buy to Open", "Equity Option")]}, "symbol"),
        ({"legs": [leg("SPY   261318C00600000", 1, "Buy to Open", "Equity Option")]}, "symbol"),
        (
            {"legs": [leg("SPY   261218C00600000", "1.5", "Buy to Open", "Equity Option")]},
            "whole number",
        ),
        ({"legs": [leg("AAPL", 1, "Buy to Open", "Bond")]}, "instrument-type"),
        ({"legs": []}, "legs"),
        ({"legs": [leg("AAPL", 1, "Buy to Open")] * 2}, "same symbol"),
        ({"legs": None}, "legs"),
        ({"legs": "AAPL"}, "legs"),
        ({"order_type": "Trailing Stop"}, "order-type"),
        ({"time_in_force": "Forever"}, "time-in-force"),
        ({"order_type": "Stop", "price": None, "price_effect": None}, "stop-trigger is required"),
    ],
)
def test_invalid_orders_name_the_field(fields: dict[str, Any], fragment: str) -> None:
    with pytest.raises(InvalidOrder) as info:
        parse_order(body(**fields))
    assert fragment in info.value.message
    assert info.value.code == "invalid_order"


def test_error_messages_never_echo_huge_input() -> None:
    with pytest.raises(OrderParseError) as info:
        parse_order(body(legs=[leg("A" * 10_000, 1, "Buy to Open")]))
    assert len(info.value.message) <= 300
    assert "A" * 50 not in info.value.message


def test_underscored_keys_are_not_read_as_dasherized_ones() -> None:
    data = body()
    data["order_type"] = "Market"  # unknown key to TastyTrade: must not change our reading
    assert parse_order(data).order_type is OrderType.LIMIT
    del data["order-type"]
    with pytest.raises(InvalidOrder, match="order-type"):
        parse_order(data)


def test_non_object_order_is_invalid() -> None:
    with pytest.raises(InvalidOrder):
        parse_order([])  # type: ignore[arg-type]


# ---- the seed's simple form --------------------------------------------------------------


def test_seed_simple_form_parses_into_the_same_model() -> None:
    simple = {
        "symbol": "AAPL",
        "quantity": 100,
        "order_type": "limit",
        "action": "buy-to-open",
        "price": D("150.00"),
        "time_in_force": "day",
        "tastytrade_account_id": "TEST123",
    }
    dashed = body(price="150.00", legs=[leg("AAPL", 100, "Buy to Open")])

    assert parse_order(simple, allow_simple=True) == parse_order(dashed)


def test_seed_simple_market_order_from_bytes() -> None:
    raw = json.dumps(
        {"symbol": "TEST", "quantity": 999999, "order_type": "market", "action": "buy-to-open"}
    ).encode()
    order = parse_order_bytes(raw, allow_simple=True)
    assert order.order_type is OrderType.MARKET
    assert order.time_in_force is TimeInForce.DAY
    assert order.legs[0].quantity == D(999999)


def test_simple_form_is_not_accepted_on_the_proxy_path() -> None:
    with pytest.raises(InvalidOrder):
        parse_order({"symbol": "AAPL", "quantity": 1, "order_type": "market", "action": "buy"})


def test_simple_form_rejects_unknown_action() -> None:
    with pytest.raises(InvalidOrder, match="action"):
        parse_order(
            {"symbol": "AAPL", "quantity": 1, "order_type": "market", "action": "yolo"},
            allow_simple=True,
        )


@pytest.mark.parametrize(
    ("symbol", "kind"),
    [
        ("AAPL", InstrumentType.EQUITY),
        ("SPY   261218C00600000", InstrumentType.EQUITY_OPTION),
        ("/ESZ5", InstrumentType.FUTURE),
        ("./ESZ5 E3AX5 251121P6000", InstrumentType.FUTURE_OPTION),
        ("BTC/USD", InstrumentType.CRYPTOCURRENCY),
        ("BRK/B", InstrumentType.EQUITY),
    ],
)
def test_simple_form_guesses_instrument_type(symbol: str, kind: InstrumentType) -> None:
    assert guess_instrument_type(symbol) is kind


# ---- complex orders ----------------------------------------------------------------------


def test_otoco_parses_into_its_contained_orders() -> None:
    raw = json.dumps(
        {
            "type": "OTOCO",
            "trigger-order": body(price="150.00"),
            "orders": [
                body(
                    price="160.00", price_effect="Credit", legs=[leg("AAPL", 10, "Sell to Close")]
                ),
                body(
                    order_type="Stop",
                    price=None,
                    price_effect=None,
                    stop_trigger="140.00",
                    legs=[leg("AAPL", 10, "Sell to Close")],
                ),
            ],
            "source": "bot",
        }
    ).encode()
    complex_order = parse_complex_order_bytes(raw)
    assert complex_order.type is ComplexType.OTOCO
    assert len(complex_order.contained) == 3
    assert complex_order.contained[0].legs[0].action is Action.BUY_TO_OPEN


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"type": "OTO", "orders": [body()]}, "requires a trigger-order"),
        ({"type": "OCO", "trigger-order": body(), "orders": [body(), body()]}, "must not have"),
        ({"type": "OCO", "orders": [body()]}, "exactly 2"),
        ({"type": "PAIRS", "orders": [body(), body(), body()]}, "orders"),
        ({"type": "BLAST", "orders": [body()]}, "type"),
        ({"type": "OCO", "orders": [body(), body(price=None)]}, "orders.1"),
    ],
)
def test_invalid_complex_orders(data: dict[str, Any], fragment: str) -> None:
    with pytest.raises(InvalidOrder) as info:
        parse_complex_order(data)
    assert fragment in info.value.message


# ---- replace -----------------------------------------------------------------------------


def test_replace_without_legs_keeps_the_original_legs() -> None:
    original = parse_order(body(price="150.00"))
    patch = parse_replace_bytes(b'{"order-type": "Limit", "time-in-force": "Day", "price": "155"}')

    replaced = apply_replace(original, patch)

    assert replaced.price == D(155)
    assert replaced.legs == original.legs
    assert replaced.price_effect is PriceEffect.DEBIT


def test_replace_to_market_drops_the_old_limit() -> None:
    original = parse_order(body(price="150.00"))
    replaced = apply_replace(original, parse_replace({"order-type": "Market"}))
    assert replaced.order_type is OrderType.MARKET
    assert replaced.price is None


def test_replace_that_leaves_an_incomplete_order_is_invalid() -> None:
    original = parse_order(body(order_type="Market", price=None, price_effect=None))
    with pytest.raises(InvalidOrder, match="price is required"):
        apply_replace(original, parse_replace({"order-type": "Limit"}))


def test_replace_with_new_legs() -> None:
    original = parse_order(body())
    replaced = apply_replace(original, parse_replace({"legs": [leg("AAPL", 20, "Buy to Open")]}))
    assert replaced.legs[0].quantity == D(20)


def test_replace_rejects_bad_values() -> None:
    with pytest.raises(InvalidOrder, match="price"):
        parse_replace({"price": "-1"})
    with pytest.raises(InvalidJson):
        parse_replace_bytes(b'{"price": NaN}')


# ---- the broker's live orders ------------------------------------------------------------


def test_live_order_uses_remaining_quantity() -> None:
    item = {
        **body(),
        "id": 901233,
        "status": "Live",
        "legs": [{**leg("AAPL", 10, "Buy to Open"), "remaining-quantity": 4, "fills": []}],
    }
    assert parse_live_order(item).legs[0].quantity == D(4)


def test_replace_legs_keep_the_larger_quantity() -> None:
    original = parse_order(body())
    replaced = apply_replace(original, parse_replace({"legs": [leg("AAPL", 2, "Buy to Open")]}))
    assert replaced.legs[0].quantity == D(10)


def test_replace_cannot_change_instruments_or_actions() -> None:
    original = parse_order(body())
    with pytest.raises(InvalidOrder, match="cannot change instruments"):
        apply_replace(original, parse_replace({"legs": [leg("MSFT", 10, "Buy to Open")]}))
    with pytest.raises(InvalidOrder, match="cannot change instruments"):
        apply_replace(original, parse_replace({"legs": [leg("AAPL", 10, "Sell to Open")]}))


def test_unknown_and_nested_optional_keys_are_tolerated() -> None:
    data = body(
        source="bot7/1.0",
        automated_source=True,
        partition_key="x",
        preflight_id="abc",
        advanced_instructions={"strict-position-effect-validation": True},
    )
    data["legs"][0]["some-future-field"] = {"nested": [1, 2, 3]}
    assert parse_order(data) == parse_order(body())


CONDITION = {
    "action": "route",
    "symbol": "AAPL",
    "instrument-type": "Equity",
    "indicator": "last",
    "comparator": "gte",
    "threshold": "300.00",
}


def test_order_rules_are_read_strictly() -> None:
    parsed = parse_order(
        body(rules={"route-after": "2026-11-30T15:00:00Z", "conditions": [CONDITION]})
    )

    assert parsed.rules is not None
    [condition] = parsed.rules.route_thresholds
    assert (condition.symbol, condition.threshold) == ("AAPL", Decimal("300.00"))


@pytest.mark.parametrize(
    "rules",
    [
        {"conditions": [{"action": "route"}]},
        {"conditions": [{**CONDITION, "comparator": "between"}]},
        {"conditions": [{**CONDITION, "price-components": [{"symbol": "AAPL"}]}]},
        {"conditions": [CONDITION], "trail": "5%"},
        {"conditions": [{**CONDITION, "threshold": "NaN"}]},
    ],
)
def test_order_rules_not_understood_refuse_the_order(rules: dict[str, object]) -> None:
    with pytest.raises(InvalidOrder, match="rules"):
        parse_order(body(rules=rules))


def test_notional_market_legs_carry_no_quantity_and_a_consistent_effect() -> None:
    notional = {
        "order-type": "Notional Market",
        "time-in-force": "Day",
        "value": "100.00",
        "value-effect": "Debit",
        "legs": [{"instrument-type": "Equity", "symbol": "AAPL", "action": "Buy to Open"}],
    }
    assert parse_order(notional).value == Decimal("100.00")
    with pytest.raises(InvalidOrder, match="value-effect must be Debit"):
        parse_order({**notional, "value-effect": "Credit"})
    with_quantity = {**notional, "legs": [{**notional["legs"][0], "quantity": 10000}]}  # type: ignore[dict-item]
    with pytest.raises(InvalidOrder, match="no quantity"):
        parse_order(with_quantity)


def _scan(text: str, max_depth: int) -> tuple[bool, bool]:
    """The depth check as a character loop (the definition the fast one must agree with):
    whether ``text`` nests deeper than ``max_depth`` outside string literals, and whether
    it ends inside a string."""
    depth, in_string, escaped, deep = 0, False, False, False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deep = deep or depth > max_depth
        elif char in "]}":
            depth -= 1
    return deep, in_string


def test_strict_json_depth_check_agrees_with_a_character_scan() -> None:
    """Random texts of brackets, quotes, backslashes and letters (valid JSON or not): the
    depth check refuses every text the character scan finds too deep (an unterminated
    string may make it refuse more: such a body is refused anyway), and refuses nothing
    else when every string is terminated."""
    chars = '[]{}"\\a,:'
    generator = random.Random(12)
    for _ in range(20_000):
        text = "".join(generator.choice(chars) for _ in range(generator.randint(0, 30)))
        deep, unterminated = _scan(text, 3)
        try:
            _check_depth(text, 3)
            refused = False
        except InvalidJson:
            refused = True
        if deep:
            assert refused, text
        elif refused:
            assert unterminated, text
