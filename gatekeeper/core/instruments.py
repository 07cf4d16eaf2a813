"""What the risk model needs to know about an instrument: its underlying group, its contract
multiplier and the symbol whose quote is the group's reference price.

Built by the adapters from the broker's ``/instruments/...`` payloads (and from positions,
which carry ``underlying-symbol`` and ``multiplier``); the core never guesses a group from an
option root (``SPXW`` options belong to ``SPX``) nor a multiplier for a future.

The builders read the ``data`` of ``GET /instruments/equity-options|futures|future-options/
{symbol}`` (shapes as tastyware's ``tastytrade/instruments.py`` parses them) and ``/positions``
items. A payload that names the wrong instrument or carries a field that is present but wrong
raises :class:`AccountStateInvalid` (fail closed); a position that simply does not carry enough
gives ``None`` (the adapter then asks the broker for the instrument).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any

from gatekeeper.core.errors import AccountStateInvalid
from gatekeeper.core.order import to_decimal
from gatekeeper.core.symbols import InstrumentType, OptionInfo, parse_option_symbol


@dataclass(frozen=True, slots=True)
class Instrument:
    """One tradable instrument as the risk model sees it.

    ``group``: the underlying group (``SPX`` for SPX and SPXW options, ``/ES`` for ``/ESZ6``,
    ``/ESH7`` and their options, the symbol itself for stock and crypto).
    ``multiplier``: value of one unit per point of price (1 for stock and crypto,
    ``shares-per-contract`` for equity options, ``notional-multiplier`` for futures, the
    future option's ``multiplier``).
    ``underlying``: the symbol whose quote prices this instrument at expiry (an option's
    underlying, e.g. ``SPX`` or ``/ESZ6``; itself otherwise), with its instrument type
    (``underlying_type``) for the quote request.
    ``option``: strike, call/put and expiry for options, else ``None``.
    """

    symbol: str
    instrument_type: InstrumentType
    group: str
    multiplier: Decimal
    underlying: str
    underlying_type: InstrumentType
    option: OptionInfo | None = None

    def __post_init__(self) -> None:
        if self.multiplier <= 0:
            raise ValueError(f"{self.symbol}: multiplier must be positive")


@lru_cache(maxsize=4096, typed=True)  # an Instrument is a frozen value: one per symbol
def plain(symbol: str, instrument_type: InstrumentType) -> Instrument | None:
    """Stock and crypto need no look-up: their own group, multiplier 1. ``None`` otherwise."""
    if instrument_type in (InstrumentType.EQUITY, InstrumentType.CRYPTOCURRENCY):
        return Instrument(symbol, instrument_type, symbol, Decimal(1), symbol, instrument_type)
    return None


def instrument_from_payload(
    instrument_type: InstrumentType, payload: Mapping[str, Any]
) -> Instrument:
    """The instrument described by an ``/instruments/...`` payload (its ``data``).

    Equity option: group and underlying ``underlying-symbol`` (``SPX`` for an SPXW option; an
    index is still typed Equity here, the quote request asks for it as either), multiplier
    ``shares-per-contract``. Future: group its product (``/`` + ``product-code``, else
    ``future-product.root-symbol``), multiplier ``notional-multiplier``, its own underlying.
    Future option: group the product of its future (``root-symbol``, else
    ``future-option-product.future-product.root-symbol``), multiplier ``multiplier``,
    underlying the future (``underlying-symbol``, e.g. ``/ESZ6``). Stock and crypto:
    :func:`plain`. Raises AccountStateInvalid when the payload is not that of an instrument of
    ``instrument_type`` or lacks what the model needs.
    """
    symbol = _text(payload, "symbol")
    if symbol is None:
        raise AccountStateInvalid("instrument payload without a symbol")
    kind = payload.get("instrument-type")
    if kind is not None and kind != instrument_type.value:
        raise AccountStateInvalid(f"instrument {symbol}: is a {kind}, not a {instrument_type}")
    simple = plain(symbol, instrument_type)
    if simple is not None:
        return simple
    if instrument_type is InstrumentType.EQUITY_OPTION:
        underlying = _needed(payload, "underlying-symbol", symbol)
        return Instrument(
            symbol,
            instrument_type,
            group=underlying,
            multiplier=_multiplier(payload, "shares-per-contract", symbol),
            underlying=underlying,
            underlying_type=InstrumentType.EQUITY,
            option=_option(instrument_type, symbol),
        )
    if instrument_type is InstrumentType.FUTURE:
        product = payload.get("future-product")
        root = product.get("root-symbol") if isinstance(product, Mapping) else None
        return Instrument(
            symbol,
            instrument_type,
            group=_product(payload.get("product-code"), root, symbol),
            multiplier=_multiplier(payload, "notional-multiplier", symbol),
            underlying=symbol,
            underlying_type=InstrumentType.FUTURE,
        )
    future = _needed(payload, "underlying-symbol", symbol)
    if not future.startswith("/"):
        raise AccountStateInvalid(f"instrument {symbol}: underlying-symbol is not a future")
    return Instrument(
        symbol,
        instrument_type,
        # The option's own product-code can be the option product (EW4), not the future's.
        group=_product(payload.get("root-symbol"), _future_product_root(payload), symbol),
        multiplier=_multiplier(payload, "multiplier", symbol),
        underlying=future,
        underlying_type=InstrumentType.FUTURE,
        option=_option(instrument_type, symbol),
    )


def instrument_from_position(item: Mapping[str, Any]) -> Instrument | None:
    """The instrument of a ``/positions`` item, when the item says enough.

    Stock and crypto always; an equity option when it carries ``underlying-symbol`` and
    ``multiplier`` (the broker's own figures). ``None`` otherwise, and always for futures and
    future options: a position does not name the product, so the instrument is looked up.
    Raises AccountStateInvalid for an unknown instrument-type or a field present but wrong.
    """
    symbol = _text(item, "symbol")
    try:
        instrument_type = InstrumentType(str(item.get("instrument-type")))
    except ValueError:
        raise AccountStateInvalid("position with an unsupported instrument-type") from None
    if symbol is None:
        raise AccountStateInvalid("position without a symbol")
    simple = plain(symbol, instrument_type)
    if simple is not None or instrument_type is not InstrumentType.EQUITY_OPTION:
        return simple
    underlying = _text(item, "underlying-symbol")
    if underlying is None or item.get("multiplier") is None:
        return None
    return Instrument(
        symbol,
        instrument_type,
        group=underlying,
        multiplier=_multiplier(item, "multiplier", symbol),
        underlying=underlying,
        underlying_type=InstrumentType.EQUITY,
        option=_option(instrument_type, symbol),
    )


def _text(payload: Mapping[str, Any], key: str) -> str | None:
    value = payload.get(key)
    return value if isinstance(value, str) and value.strip() else None


def _needed(payload: Mapping[str, Any], key: str, symbol: str) -> str:
    value = _text(payload, key)
    if value is None:
        raise AccountStateInvalid(f"instrument {symbol}: no {key}")
    return value


def _multiplier(payload: Mapping[str, Any], key: str, symbol: str) -> Decimal:
    try:
        value = to_decimal(payload.get(key))
    except ValueError:
        raise AccountStateInvalid(f"instrument {symbol}: {key} is not a number") from None
    if value <= 0:
        raise AccountStateInvalid(f"instrument {symbol}: {key} must be positive")
    return value


def _future_product_root(payload: Mapping[str, Any]) -> object:
    product = payload.get("future-option-product")
    future = product.get("future-product") if isinstance(product, Mapping) else None
    return future.get("root-symbol") if isinstance(future, Mapping) else None


def _product(first: object, second: object, symbol: str) -> str:
    """``/ES`` from a product code ``ES`` or a root symbol ``/ES``: the first one given."""
    for name in (first, second):
        if isinstance(name, str) and name.strip("/ "):
            return "/" + name.strip("/ ")
    raise AccountStateInvalid(f"instrument {symbol}: no product (product-code or root-symbol)")


def _option(instrument_type: InstrumentType, symbol: str) -> OptionInfo:
    info = parse_option_symbol(instrument_type, symbol)
    if info is None:
        raise AccountStateInvalid(f"instrument {symbol}: not a {instrument_type} symbol")
    return info
