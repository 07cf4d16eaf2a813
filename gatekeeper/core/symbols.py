"""Instrument symbols: syntax checks and what can be read from them (underlying, strike...).

Equity options use OCC symbols with the root padded to 6 characters
(``SPY   261218C00600000``: root ``SPY``, expiry 2026-12-18, call, strike 600.000);
futures ``/ESZ5``; future options ``./ESZ5 E3AX5 251121P6000`` (underlying future ``/ESZ5``);
crypto ``BTC/USD``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum
from functools import lru_cache


class InstrumentType(StrEnum):
    """TastyTrade's ``instrument-type`` values that an order leg may carry."""

    EQUITY = "Equity"
    EQUITY_OPTION = "Equity Option"
    FUTURE = "Future"
    FUTURE_OPTION = "Future Option"
    CRYPTOCURRENCY = "Cryptocurrency"


class OptionKind(StrEnum):
    """Call or put."""

    CALL = "C"
    PUT = "P"


@dataclass(frozen=True, slots=True)
class OptionInfo:
    """What an option symbol says about the contract."""

    underlying: str
    expiry: date
    kind: OptionKind
    strike: Decimal


_EQUITY = re.compile(r"[A-Z][A-Z0-9./-]{0,11}")
_OCC = re.compile(r"(?=[A-Z0-9./ ]{6})([A-Z0-9./]{1,6}) *(\d{6})([CP])(\d{8})")
_FUTURE = re.compile(r"/[A-Z0-9]{1,6}[FGHJKMNQUVXZ]\d{1,2}")
_FUTURE_OPTION = re.compile(
    r"\./([A-Z0-9]{1,6}[FGHJKMNQUVXZ]\d{1,2}) +[A-Z0-9]{1,8} +(\d{6})([CP])(\d{1,9}(?:\.\d{1,6})?)"
)
_CRYPTO = re.compile(r"[A-Z0-9]{2,10}/[A-Z]{3,4}")


def _expiry(yymmdd: str) -> date | None:
    try:
        return date(2000 + int(yymmdd[:2]), int(yymmdd[2:4]), int(yymmdd[4:]))
    except ValueError:
        return None


@lru_cache(maxsize=16384, typed=True)  # OptionInfo is a frozen value: read each once
def parse_option_symbol(instrument_type: InstrumentType, symbol: str) -> OptionInfo | None:
    """Read an equity or future option symbol; ``None`` if it is not a well-formed one."""
    if instrument_type is InstrumentType.EQUITY_OPTION:
        match = _OCC.fullmatch(symbol)
        if match is None or len(symbol) != 21:
            return None
        root, yymmdd, kind, strike = match.groups()
        expiry = _expiry(yymmdd)
        if expiry is None:
            return None
        return OptionInfo(root, expiry, OptionKind(kind), Decimal(strike) / 1000)
    if instrument_type is InstrumentType.FUTURE_OPTION:
        match = _FUTURE_OPTION.fullmatch(symbol)
        if match is None:
            return None
        future, yymmdd, kind, strike = match.groups()
        expiry = _expiry(yymmdd)
        if expiry is None:
            return None
        return OptionInfo("/" + future, expiry, OptionKind(kind), Decimal(strike))
    return None


def is_valid_symbol(instrument_type: InstrumentType, symbol: str) -> bool:
    """Whether ``symbol`` has the syntax TastyTrade uses for ``instrument_type``."""
    if instrument_type is InstrumentType.EQUITY:
        return _EQUITY.fullmatch(symbol) is not None
    if instrument_type is InstrumentType.FUTURE:
        return _FUTURE.fullmatch(symbol) is not None
    if instrument_type is InstrumentType.CRYPTOCURRENCY:
        return _CRYPTO.fullmatch(symbol) is not None
    return parse_option_symbol(instrument_type, symbol) is not None


def underlying_of(instrument_type: InstrumentType, symbol: str) -> str:
    """The symbol whose price drives this instrument (concentration is grouped by it).

    Equities, futures and crypto are their own underlying; options map to their root
    (equity) or future (future options). Malformed option symbols map to themselves.
    """
    info = parse_option_symbol(instrument_type, symbol)
    return info.underlying if info is not None else symbol


def guess_instrument_type(symbol: str) -> InstrumentType:
    """Instrument type implied by a symbol's shape (for the seed's simple order form)."""
    if symbol.startswith("./"):
        return InstrumentType.FUTURE_OPTION
    if symbol.startswith("/"):
        return InstrumentType.FUTURE
    if len(symbol) == 21 and _OCC.fullmatch(symbol):
        return InstrumentType.EQUITY_OPTION
    if _CRYPTO.fullmatch(symbol):
        return InstrumentType.CRYPTOCURRENCY
    return InstrumentType.EQUITY
