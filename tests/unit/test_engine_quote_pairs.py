"""Which quotes the engine asks for: each instrument's own and its underlying's, as the
instrument names it (never a symbol read off an option root)."""

from __future__ import annotations

from decimal import Decimal

from gatekeeper.core.instruments import Instrument, plain
from gatekeeper.core.symbols import InstrumentType, parse_option_symbol
from gatekeeper.orderpath.inputs import quote_pairs

EQUITY = InstrumentType.EQUITY
FUTURE = InstrumentType.FUTURE
FUTURE_OPTION = InstrumentType.FUTURE_OPTION
EQUITY_OPTION = InstrumentType.EQUITY_OPTION
SPXW_CALL = "SPXW  261218C05800000"
ES_CALL = "./ESZ6 EW4Z6 261218C6000"


def test_future_option_underlying_is_quoted_as_its_future() -> None:
    option = Instrument(
        ES_CALL,
        FUTURE_OPTION,
        "/ES",
        Decimal(50),
        "/ESZ6",
        FUTURE,
        parse_option_symbol(FUTURE_OPTION, ES_CALL),
    )

    pairs = quote_pairs([("Future Option", ES_CALL)], {ES_CALL: option})

    assert pairs == [("Future Option", ES_CALL), ("Future", "/ESZ6")]


def test_spxw_underlying_is_asked_as_equity_and_index_spx() -> None:
    option = Instrument(
        SPXW_CALL,
        EQUITY_OPTION,
        "SPX",
        Decimal(100),
        "SPX",
        EQUITY,
        parse_option_symbol(EQUITY_OPTION, SPXW_CALL),
    )
    stock = plain("AAPL", EQUITY)
    assert stock is not None

    pairs = quote_pairs(
        [("Equity Option", SPXW_CALL), ("Equity", "AAPL")], {SPXW_CALL: option, "AAPL": stock}
    )

    assert pairs == [
        ("Equity Option", SPXW_CALL),
        ("Equity", "AAPL"),
        ("Equity", "SPX"),
        ("Index", "SPX"),
    ]


def test_an_unresolved_instrument_is_still_quoted_but_not_its_guessed_underlying() -> None:
    assert quote_pairs([("Future", "/XXZ6")], {}) == [("Future", "/XXZ6")]
