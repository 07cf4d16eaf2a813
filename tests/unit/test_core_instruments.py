"""Instrument builders: the broker's /instruments and /positions payloads to groups and
multipliers (risk-model.md section 1), with payloads shaped as tastyware parses them."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from gatekeeper.core.errors import AccountStateInvalid
from gatekeeper.core.instruments import (
    Instrument,
    instrument_from_payload,
    instrument_from_position,
)
from gatekeeper.core.payloads import position_from_payload, snapshot_from_payloads
from gatekeeper.core.symbols import InstrumentType, OptionKind
from tests.unit.builders import NOW

D = Decimal
EQUITY_OPTION = InstrumentType.EQUITY_OPTION
FUTURE = InstrumentType.FUTURE
FUTURE_OPTION = InstrumentType.FUTURE_OPTION


def spxw_option(**changes: Any) -> dict[str, Any]:
    """``GET /instruments/equity-options/SPXW  261218C05800000`` data."""
    return {
        "symbol": "SPXW  261218C05800000",
        "instrument-type": "Equity Option",
        "active": True,
        "strike-price": "5800.0",
        "root-symbol": "SPXW",
        "underlying-symbol": "SPX",
        "expiration-date": "2026-12-18",
        "exercise-style": "European",
        "shares-per-contract": 100,
        "option-type": "C",
        "option-chain-type": "Standard",
        "expiration-type": "Weekly",
        "settlement-type": "PM",
        "stops-trading-at": "2026-12-18T21:15:00.000+00:00",
        "market-time-instrument-collection": "Cash Settled Equity Option",
        "days-to-expiration": 300,
        "expires-at": "2026-12-18T21:15:00.000+00:00",
        "is-closing-only": False,
        "streamer-symbol": ".SPXW261218C5800",
        **changes,
    }


def mini_option() -> dict[str, Any]:
    """A mini option (10 shares): its own root, the stock as underlying."""
    return spxw_option(
        **{
            "symbol": "AAPL7 261218C00200000",
            "root-symbol": "AAPL7",
            "underlying-symbol": "AAPL",
            "strike-price": "200.0",
            "shares-per-contract": 10,
            "exercise-style": "American",
            "settlement-type": "PM",
            "streamer-symbol": ".AAPL7261218C200",
        }
    )


def mes_future(**changes: Any) -> dict[str, Any]:
    """``GET /instruments/futures/MESZ6`` data."""
    return {
        "symbol": "/MESZ6",
        "instrument-type": "Future",
        "product-code": "MES",
        "tick-size": "0.25",
        "notional-multiplier": "5.0",
        "display-factor": "0.01",
        "last-trade-date": "2026-12-18",
        "expiration-date": "2026-12-18",
        "active": True,
        "active-month": True,
        "next-active-month": False,
        "is-closing-only": False,
        "stops-trading-at": "2026-12-18T14:30:00.000+00:00",
        "expires-at": "2026-12-18T14:30:00.000+00:00",
        "product-group": "CME_ES",
        "exchange": "CME",
        "streamer-exchange-code": "XCME",
        "back-month-first-calendar-symbol": False,
        "streamer-symbol": "/MESZ26:XCME",
        "future-product": {
            "root-symbol": "/MES",
            "code": "MES",
            "description": "Micro E-mini S&P 500",
            "notional-multiplier": "5.0",
        },
        **changes,
    }


def es_future_option(**changes: Any) -> dict[str, Any]:
    """``GET /instruments/future-options/.%2FESZ6%20EW4Z6%20261218C6000`` data."""
    return {
        "symbol": "./ESZ6 EW4Z6 261218C6000",
        "instrument-type": "Future Option",
        "underlying-symbol": "/ESZ6",
        "product-code": "EW4",
        "expiration-date": "2026-12-18",
        "root-symbol": "/ES",
        "option-root-symbol": "EW4",
        "strike-price": "6000.0",
        "exchange": "CME",
        "streamer-symbol": "./EW4Z26C6000:XCME",
        "option-type": "C",
        "exercise-style": "American",
        "is-vanilla": True,
        "is-primary-deliverable": True,
        "future-price-ratio": "1.0",
        "multiplier": "50.0",
        "underlying-count": "1.0",
        "is-confirmed": True,
        "notional-value": "1.0",
        "display-factor": "0.01",
        "settlement-type": "Future",
        "strike-factor": "1.0",
        "maturity-date": "2026-12-18",
        "is-exercisable-weekly": True,
        "last-trade-time": "0",
        "days-to-expiration": 300,
        "is-closing-only": False,
        "active": True,
        "stops-trading-at": "2026-12-18T14:30:00.000+00:00",
        "expires-at": "2026-12-18T14:30:00.000+00:00",
        "exchange-symbol": "EW4Z6 C6000",
        "security-exchange": "XCME",
        "sx-id": "0",
        **changes,
    }


def option_position(**changes: Any) -> dict[str, Any]:
    """A ``/positions`` item of a short SPXW call."""
    return {
        "account-number": "5WT00001",
        "symbol": "SPXW  261218C05800000",
        "instrument-type": "Equity Option",
        "underlying-symbol": "SPX",
        "quantity": 1,
        "quantity-direction": "Short",
        "close-price": "120.0",
        "average-open-price": "110.0",
        "multiplier": 100,
        "cost-effect": "Debit",
        **changes,
    }


# -- /instruments payloads ---------------------------------------------------------------------


def test_spxw_option_is_grouped_by_its_underlying_not_its_root() -> None:
    instrument = instrument_from_payload(EQUITY_OPTION, spxw_option())

    assert instrument.group == "SPX"
    assert instrument.underlying == "SPX"
    assert instrument.underlying_type is InstrumentType.EQUITY
    assert instrument.multiplier == D(100)
    assert instrument.option is not None
    assert instrument.option.underlying == "SPXW"  # the OCC root, which is not the group
    assert (instrument.option.strike, instrument.option.kind) == (D(5800), OptionKind.CALL)
    assert instrument.option.expiry == date(2026, 12, 18)


def test_mini_option_has_multiplier_ten() -> None:
    instrument = instrument_from_payload(EQUITY_OPTION, mini_option())

    assert (instrument.group, instrument.multiplier) == ("AAPL", D(10))


def test_micro_future_is_grouped_by_its_product_with_its_notional_multiplier() -> None:
    instrument = instrument_from_payload(FUTURE, mes_future())

    assert instrument == Instrument("/MESZ6", FUTURE, "/MES", D(5), "/MESZ6", FUTURE, option=None)


def test_future_group_falls_back_to_the_future_product_root() -> None:
    payload = mes_future()
    del payload["product-code"]

    assert instrument_from_payload(FUTURE, payload).group == "/MES"


def test_future_option_is_priced_by_its_future_and_grouped_by_its_product() -> None:
    instrument = instrument_from_payload(FUTURE_OPTION, es_future_option())

    assert instrument.group == "/ES"  # not the option's own product code EW4
    assert instrument.underlying == "/ESZ6"  # quoted as /ESZ6, never //ESZ6
    assert instrument.underlying_type is FUTURE
    assert instrument.multiplier == D(50)
    assert instrument.option is not None
    assert (instrument.option.underlying, instrument.option.strike) == ("/ESZ6", D(6000))


def test_future_option_group_falls_back_to_its_future_option_product() -> None:
    payload = es_future_option(
        **{
            "future-option-product": {
                "root-symbol": "EW4",
                "future-product": {"root-symbol": "/ES"},
            }
        }
    )
    del payload["root-symbol"]

    assert instrument_from_payload(FUTURE_OPTION, payload).group == "/ES"


def test_stock_and_crypto_payloads_are_plain() -> None:
    stock = instrument_from_payload(InstrumentType.EQUITY, {"symbol": "AAPL"})
    crypto = instrument_from_payload(InstrumentType.CRYPTOCURRENCY, {"symbol": "BTC/USD"})

    assert (stock.group, stock.multiplier) == ("AAPL", D(1))
    assert (crypto.group, crypto.underlying) == ("BTC/USD", "BTC/USD")


@pytest.mark.parametrize(
    ("instrument_type", "payload", "problem"),
    [
        (EQUITY_OPTION, spxw_option(symbol=None), "without a symbol"),
        (EQUITY_OPTION, spxw_option(**{"underlying-symbol": None}), "no underlying-symbol"),
        (EQUITY_OPTION, spxw_option(**{"underlying-symbol": " "}), "no underlying-symbol"),
        (EQUITY_OPTION, spxw_option(**{"shares-per-contract": None}), "not a number"),
        (EQUITY_OPTION, spxw_option(**{"shares-per-contract": 0}), "must be positive"),
        (EQUITY_OPTION, spxw_option(**{"shares-per-contract": "NaN"}), "not a number"),
        (EQUITY_OPTION, spxw_option(**{"instrument-type": "Future"}), "is a Future"),
        (EQUITY_OPTION, spxw_option(symbol="SPXW"), "not a Equity Option symbol"),
        (FUTURE, mes_future(**{"notional-multiplier": "-5"}), "must be positive"),
        (FUTURE, mes_future(**{"product-code": None, "future-product": None}), "no product"),
        (FUTURE_OPTION, es_future_option(**{"underlying-symbol": "ES"}), "not a future"),
        (FUTURE_OPTION, es_future_option(**{"root-symbol": "/"}), "no product"),
        (FUTURE_OPTION, es_future_option(multiplier=True), "not a number"),
    ],
)
def test_malformed_instrument_payloads_are_refused(
    instrument_type: InstrumentType, payload: dict[str, Any], problem: str
) -> None:
    with pytest.raises(AccountStateInvalid, match=problem):
        instrument_from_payload(instrument_type, payload)


# -- /positions items --------------------------------------------------------------------------


def test_held_spxw_option_says_its_group_and_multiplier() -> None:
    instrument = instrument_from_position(option_position())

    assert instrument is not None
    assert (instrument.group, instrument.multiplier, instrument.underlying) == (
        "SPX",
        D(100),
        "SPX",
    )
    assert instrument.option is not None


def test_held_mini_option_takes_the_position_multiplier() -> None:
    item = option_position(symbol="AAPL7 261218C00200000", multiplier="10.0")
    item["underlying-symbol"] = "AAPL"

    instrument = instrument_from_position(item)

    assert instrument is not None
    assert (instrument.group, instrument.multiplier) == ("AAPL", D(10))


@pytest.mark.parametrize(
    "item",
    [
        option_position(multiplier=None),
        option_position(**{"underlying-symbol": None}),
        option_position(**{"underlying-symbol": ""}),
        option_position(
            symbol="/ESZ6", **{"instrument-type": "Future", "underlying-symbol": "/ES"}
        ),
        option_position(
            symbol="./ESZ6 EW4Z6 261218C6000",
            **{"instrument-type": "Future Option", "underlying-symbol": "/ESZ6"},
        ),
    ],
)
def test_positions_that_do_not_say_enough_are_looked_up(item: dict[str, Any]) -> None:
    assert instrument_from_position(item) is None


def test_held_stock_and_crypto_need_no_look_up() -> None:
    stock = instrument_from_position({"symbol": "TQQQ", "instrument-type": "Equity"})
    crypto = instrument_from_position({"symbol": "ETH/USD", "instrument-type": "Cryptocurrency"})

    assert stock is not None
    assert crypto is not None
    assert (stock.group, crypto.group) == ("TQQQ", "ETH/USD")


@pytest.mark.parametrize(
    ("item", "problem"),
    [
        (option_position(**{"instrument-type": "Bond"}), "unsupported instrument-type"),
        (option_position(symbol=None), "without a symbol"),
        (option_position(multiplier="0"), "must be positive"),
        (option_position(multiplier="ten"), "not a number"),
        (option_position(symbol="SPXW C5800"), "not a Equity Option symbol"),
    ],
)
def test_malformed_positions_are_refused(item: dict[str, Any], problem: str) -> None:
    with pytest.raises(AccountStateInvalid, match=problem):
        instrument_from_position(item)


# -- the snapshot ------------------------------------------------------------------------------


def test_position_underlying_is_the_brokers_underlying_symbol() -> None:
    held = position_from_payload(option_position())
    bare = position_from_payload(option_position(**{"underlying-symbol": None}))

    assert held is not None
    assert bare is not None
    assert held.underlying_symbol == "SPX"
    assert bare.underlying_symbol == "SPXW"  # read from the symbol only when not given


def test_snapshot_carries_the_instruments() -> None:
    future = instrument_from_payload(FUTURE, mes_future())

    snapshot = snapshot_from_payloads(
        account_number="5WT00001",
        balances={"net-liquidating-value": "100000", "cash-balance": "50000"},
        positions=[option_position()],
        live_orders=[],
        quotes=[],
        start_of_day_nlv=None,
        fetched_at=NOW,
        instruments={future.symbol: future},
    )

    assert snapshot.instruments == {"/MESZ6": future}
    assert snapshot.positions[0].underlying == "SPX"
