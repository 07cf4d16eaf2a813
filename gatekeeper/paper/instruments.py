"""Reading instrument symbols against the catalog: what a symbol is, and its trading terms.

Symbols as TastyTrade writes them: equity ``AAPL``; equity option OCC with the root padded to
6 characters (``SPXW  261218P01000000``); future ``/ESZ6`` (product, month code, 1-2 digit
year); future option ``./ESZ6 E3AZ6 261218P6000`` (future, option contract = option root +
month + year, YYMMDD expiry, C/P, strike); cryptocurrency ``BTC/USD``. Pure functions: the
date a one-digit year means is resolved against a ``today`` the caller passes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from gatekeeper.paper.catalog import MONTH_CODES, Catalog, CryptoAsset, FutureProduct, OptionRoot
from gatekeeper.paper.model import (
    CRYPTOCURRENCY,
    EQUITY,
    EQUITY_OPTION,
    FUTURE,
    FUTURE_OPTION,
    INDEX,
    Terms,
)

OCC_SYMBOL = re.compile(
    r"^(?P<root>[A-Z0-9.]{1,6}) *(?P<expiry>\d{6})(?P<kind>[CP])(?P<strike>\d{8})$"
)
EQUITY_SYMBOL = re.compile(r"^[A-Z][A-Z0-9./]{0,9}$")
_MONTH_YEAR = re.compile(rf"^(?P<month>[{MONTH_CODES}])(?P<year>\d{{1,2}})$")
FUTURE_OPTION_SYMBOL = re.compile(
    r"^\./(?P<future>[A-Z0-9]{2,8}) +(?P<contract>[A-Z0-9]{2,8}) +"
    r"(?P<expiry>\d{6})(?P<kind>[CP])(?P<strike>\d{1,9}(?:\.\d{1,6})?)$"
)
CRYPTO_SYMBOL = re.compile(r"^[A-Z0-9]{2,10}/USD$")


@dataclass(frozen=True)
class EquityOptionContract:
    symbol: str  # canonical: root padded to 6 characters
    root: OptionRoot
    expiration: date
    option_type: str  # C | P
    strike: Decimal


@dataclass(frozen=True)
class FutureContract:
    symbol: str  # /ESZ6
    product: FutureProduct
    month: str  # month code
    year_digits: str  # as written: "6" or "26"

    def year(self, today: date) -> int:
        return resolve_year(self.year_digits, today)

    def month_number(self) -> int:
        return MONTH_CODES.index(self.month) + 1

    def expiration(self, today: date) -> date:
        """Third Friday of the contract month (simplified: right for CME equity index)."""
        return third_friday(self.year(today), self.month_number())


@dataclass(frozen=True)
class FutureOptionContract:
    symbol: str
    future: FutureContract
    option_root: str  # E3A
    contract: str  # E3AZ6
    expiration: date
    option_type: str
    strike: Decimal


def resolve_year(digits: str, today: date) -> int:
    """A two-digit year is 20YY; a one-digit year the one within 5 years back, 4 ahead."""
    if len(digits) == 2:
        return 2000 + int(digits)
    year = today.year - today.year % 10 + int(digits)
    return year + 10 if year < today.year - 5 else year


def third_friday(year: int, month: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(4 - first.weekday()) % 7 + 14)


def _yymmdd(text: str) -> date | None:
    try:
        return date(2000 + int(text[:2]), int(text[2:4]), int(text[4:]))
    except ValueError:
        return None


def parse_equity_option(symbol: str, catalog: Catalog) -> EquityOptionContract | None:
    """An OCC symbol's contract, or None when malformed (bad date, zero strike)."""
    match = OCC_SYMBOL.match(symbol)
    expiration = _yymmdd(match["expiry"]) if match else None
    if match is None or expiration is None or int(match["strike"]) == 0:
        return None
    root = match["root"]
    canonical = f"{root:<6}{match['expiry']}{match['kind']}{match['strike']}"
    strike = Decimal(match["strike"]) / 1000
    return EquityOptionContract(
        canonical, catalog.option_root(root), expiration, match["kind"], strike
    )


def parse_future(symbol: str, catalog: Catalog) -> FutureContract | None:
    """``/ESZ6`` (or ``ESZ6``) of a known product, any month; None otherwise."""
    name = symbol.removeprefix("/")
    for code, product in catalog.future_products.items():
        if name.startswith(code):
            match = _MONTH_YEAR.match(name[len(code) :])
            if match is not None:
                return FutureContract("/" + name, product, match["month"], match["year"])
    return None


def parse_future_option(symbol: str, catalog: Catalog) -> FutureOptionContract | None:
    """``./ESZ6 E3AZ6 261218P6000`` on a known future with one of its option roots."""
    match = FUTURE_OPTION_SYMBOL.match(symbol)
    if match is None:
        return None
    future = parse_future("/" + match["future"], catalog)
    expiration = _yymmdd(match["expiry"])
    if future is None or expiration is None or Decimal(match["strike"]) == 0:
        return None
    contract = match["contract"]
    for root in future.product.option_roots:
        if contract.startswith(root) and _MONTH_YEAR.match(contract[len(root) :]):
            return FutureOptionContract(
                symbol, future, root, contract, expiration, match["kind"], Decimal(match["strike"])
            )
    return None


def find_crypto(symbol: str, catalog: Catalog) -> CryptoAsset | None:
    return catalog.cryptocurrencies.get(symbol)


def terms_of(symbol: str, instrument_type: str, catalog: Catalog) -> Terms | None:
    """Multiplier and underlying of a tradable instrument; None if the symbol is unknown."""
    if instrument_type == EQUITY:
        return Terms(Decimal(1), symbol, EQUITY) if EQUITY_SYMBOL.match(symbol) else None
    if instrument_type == EQUITY_OPTION:
        option = parse_equity_option(symbol, catalog)
        if option is None:
            return None
        underlying = option.root.underlying
        kind = INDEX if underlying in catalog.indices else EQUITY
        return Terms(Decimal(option.root.shares_per_contract), underlying, kind)
    if instrument_type == FUTURE:
        future = parse_future(symbol, catalog)
        if future is None or future.symbol != symbol:
            return None
        return Terms(future.product.notional_multiplier, future.product.root_symbol, FUTURE)
    if instrument_type == FUTURE_OPTION:
        future_option = parse_future_option(symbol, catalog)
        if future_option is None:
            return None
        future = future_option.future
        return Terms(future.product.notional_multiplier, future.symbol, FUTURE)
    return None


def valid_quote_symbol(symbol: str, instrument_type: str) -> bool:
    """Whether ``symbol`` is shaped like a symbol of ``instrument_type`` (no catalog check)."""
    patterns = {
        EQUITY: EQUITY_SYMBOL,
        INDEX: EQUITY_SYMBOL,
        EQUITY_OPTION: OCC_SYMBOL,
        FUTURE: re.compile(rf"^/[A-Z0-9]{{1,6}}[{MONTH_CODES}]\d{{1,2}}$"),
        FUTURE_OPTION: FUTURE_OPTION_SYMBOL,
        CRYPTOCURRENCY: CRYPTO_SYMBOL,
    }
    pattern = patterns.get(instrument_type)
    return pattern is not None and pattern.match(symbol) is not None


def infer_type(symbol: str, catalog: Catalog) -> str:
    """The instrument type a quote for ``symbol`` has when nobody says."""
    if symbol.startswith("./"):
        return FUTURE_OPTION
    if symbol.startswith("/"):
        return FUTURE
    if OCC_SYMBOL.match(symbol):
        return EQUITY_OPTION
    if symbol in catalog.cryptocurrencies or CRYPTO_SYMBOL.match(symbol):
        return CRYPTOCURRENCY
    return INDEX if symbol in catalog.indices else EQUITY
