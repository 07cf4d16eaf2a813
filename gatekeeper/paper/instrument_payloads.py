"""Rendering instruments as TastyTrade's ``/instruments`` JSON (dasherized, decimals as strings).

Shapes follow TastyTrade's documented examples and carry every field tastyware 13's models
(``tastytrade.instruments``) require. Times: equity options stop trading at 16:00 New York
(16:15 when cash-settled), futures at 09:30 on their expiration day, future options at 16:00.
"""

from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from gatekeeper.paper.catalog import MONTH_CODES, CryptoAsset, FutureProduct
from gatekeeper.paper.http import NEW_YORK
from gatekeeper.paper.instruments import (
    EquityOptionContract,
    FutureContract,
    FutureOptionContract,
    resolve_year,
    third_friday,
)
from gatekeeper.paper.model import CRYPTOCURRENCY, EQUITY_OPTION, FUTURE, FUTURE_OPTION
from gatekeeper.paper.payloads import dec, iso


def _at(day: date, hour: int, minute: int = 0) -> str:
    return iso(datetime.combine(day, time(hour, minute), NEW_YORK))


def _number(value: Decimal) -> str:
    """A strike as symbols write it: ``6000``, ``392.5``."""
    return format(value.normalize(), "f")


def equity_option_payload(option: EquityOptionContract, today: date) -> dict[str, Any]:
    """``GET /instruments/equity-options/{symbol}``: tastyware's ``Option``."""
    root = option.root
    expiry = option.expiration
    close = _at(expiry, 16, 15) if root.cash_settled else _at(expiry, 16)
    regular = expiry == third_friday(expiry.year, expiry.month)
    return {
        "symbol": option.symbol,
        "instrument-type": EQUITY_OPTION,
        "active": expiry >= today,
        "strike-price": dec(option.strike.normalize()),
        "root-symbol": root.root,
        "underlying-symbol": root.underlying,
        "expiration-date": expiry.isoformat(),
        "exercise-style": root.exercise_style,
        "shares-per-contract": root.shares_per_contract,
        "option-type": option.option_type,
        "option-chain-type": "Standard" if root.shares_per_contract == 100 else "Non-standard",
        "expiration-type": "Regular" if regular else "Weekly",
        "settlement-type": root.settlement_type,
        "stops-trading-at": close,
        "market-time-instrument-collection": "Cash Settled Equity Option"
        if root.cash_settled
        else "Equity Option",
        "days-to-expiration": (expiry - today).days,
        "expires-at": close,
        "is-closing-only": False,
        "streamer-symbol": (
            f".{root.root}{expiry:%y%m%d}{option.option_type}{_number(option.strike)}"
        ),
    }


_END_OF_MONTH_ROOTS = frozenset({"EW", "EX", "QNE"})


def _option_expiration_type(root: str) -> str:
    """Weeklies and dailies carry a week number (EW1, E3A, ML2); EW is end-of-month."""
    if any(char.isdigit() for char in root):
        return "Weekly"
    return "End-Of-Month" if root in _END_OF_MONTH_ROOTS else "Regular"


def future_option_product_payload(
    product: FutureProduct, root: str, *, nested: bool = True
) -> dict[str, Any]:
    """tastyware's ``FutureOptionProduct`` (with its ``future-product`` when ``nested``)."""
    data: dict[str, Any] = {
        "root-symbol": root,
        "cash-settled": False,
        "code": root,
        "legacy-code": root,
        "clearport-code": root,
        "clearing-code": root,
        "clearing-exchange-code": "9C",
        "clearing-price-multiplier": "1.0",
        "display-factor": dec(product.display_factor),
        "exchange": product.exchange,
        "product-type": "Physical",
        "expiration-type": _option_expiration_type(root),
        "settlement-delay-days": 0,
        "is-rollover": False,
        "market-sector": product.market_sector,
    }
    if nested:
        data["future-product"] = future_product_payload(product)
    return data


def future_product_payload(product: FutureProduct, *, with_options: bool = False) -> dict[str, Any]:
    """tastyware's ``FutureProduct`` (``option-products`` listed when ``with_options``)."""
    months = list(product.listed_months)
    data: dict[str, Any] = {
        "root-symbol": product.root_symbol,
        "code": product.code,
        "description": product.description,
        "clearing-code": product.code,
        "clearing-exchange-code": "16",
        "clearport-code": product.code,
        "legacy-code": product.code,
        "exchange": product.exchange,
        "legacy-exchange-code": product.exchange,
        "product-type": product.product_type,
        "listed-months": months,
        "active-months": months,
        "notional-multiplier": dec(product.notional_multiplier),
        "tick-size": dec(product.tick_size),
        "display-factor": dec(product.display_factor),
        "streamer-exchange-code": product.streamer_exchange_code,
        "small-notional": product.description.startswith("Micro"),
        "back-month-first-calendar-symbol": product.cash_settled,
        "first-notice": False,
        "cash-settled": product.cash_settled,
        "security-group": product.code,
        "market-sector": product.market_sector,
        "roll": {
            "name": product.market_sector.lower().replace(" ", "_"),
            "active-count": 3,
            "cash-settled": product.cash_settled,
            "business-days-offset": 4,
            "first-notice": False,
        },
    }
    if with_options:
        data["option-products"] = [
            future_option_product_payload(product, root, nested=False)
            for root in sorted(product.option_roots)
        ]
    return data


def listed_contracts(product: FutureProduct, today: date, count: int) -> list[tuple[int, str]]:
    """The next ``count`` listed (year, month code) contracts not yet expired on ``today``."""
    found: list[tuple[int, str]] = []
    year, month = today.year, today.month
    while len(found) < count:
        code = MONTH_CODES[month - 1]
        if code in product.listed_months and third_friday(year, month) >= today:
            found.append((year, code))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return found


def future_payload(future: FutureContract, today: date) -> dict[str, Any]:
    """``GET /instruments/futures/{symbol}``: tastyware's ``Future``."""
    product = future.product
    year = future.year(today)
    expiry = future.expiration(today)
    active, after = listed_contracts(product, today, 2)
    later = listed_contracts(product, expiry, 2)
    roll = next((c for c in later if c != (year, future.month)), later[-1])
    tick = [{"value": dec(product.tick_size)}]
    return {
        "symbol": future.symbol,
        "instrument-type": FUTURE,
        "product-code": product.code,
        "contract-size": dec(product.notional_multiplier),
        "tick-size": dec(product.tick_size),
        "notional-multiplier": dec(product.notional_multiplier),
        "main-fraction": "0.0",
        "sub-fraction": "0.0",
        "display-factor": dec(product.display_factor),
        "last-trade-date": expiry.isoformat(),
        "expiration-date": expiry.isoformat(),
        "closing-only-date": expiry.isoformat(),
        "active": expiry >= today,
        "active-month": (year, future.month) == active,
        "next-active-month": (year, future.month) == after,
        "is-closing-only": False,
        "stops-trading-at": _at(expiry, 9, 30),
        "expires-at": _at(expiry, 9, 30),
        "product-group": f"CME_{product.code}",
        "exchange": product.exchange,
        "roll-target-symbol": f"{product.root_symbol}{roll[1]}{roll[0] % 10}",
        "streamer-exchange-code": product.streamer_exchange_code,
        "streamer-symbol": (
            f"{product.root_symbol}{future.month}{year % 100:02d}:{product.streamer_exchange_code}"
        ),
        "back-month-first-calendar-symbol": product.cash_settled,
        "is-tradeable": True,
        "future-product": future_product_payload(product),
        "tick-sizes": tick,
        "option-tick-sizes": tick,
    }


def future_option_payload(option: FutureOptionContract, today: date) -> dict[str, Any]:
    """``GET /instruments/future-options/{symbol}``: tastyware's ``FutureOption``.

    ``multiplier`` is 1.0, as TastyTrade's documented example reports it, although one /ES
    option moves 50 dollars a point (the future's notional multiplier): the gatekeeper must
    not take it at its word. ``notional-value`` is the notional multiplier times
    ``display-factor`` (0.5 for /ES), as in that example.
    """
    product = option.future.product
    expiry = option.expiration
    month_year = option.contract[len(option.option_root) :]
    year = resolve_year(month_year[1:], today) % 100
    strike = _number(option.strike)
    close = _at(expiry, 16)
    return {
        "symbol": option.symbol,
        "instrument-type": FUTURE_OPTION,
        "underlying-symbol": option.future.symbol,
        "product-code": product.code,
        "expiration-date": expiry.isoformat(),
        "root-symbol": product.root_symbol,
        "option-root-symbol": option.option_root,
        "strike-price": dec(option.strike.normalize()),
        "exchange": product.exchange,
        "exchange-symbol": f"{option.contract} {option.option_type}{strike}",
        "streamer-symbol": (
            f"./{option.option_root}{month_year[0]}{year:02d}{option.option_type}{strike}"
            f":{product.streamer_exchange_code}"
        ),
        "option-type": option.option_type,
        "exercise-style": "American",
        "is-vanilla": True,
        "is-primary-deliverable": True,
        "future-price-ratio": "1.0",
        "multiplier": "1.0",
        "underlying-count": "1.0",
        "is-confirmed": True,
        "notional-value": dec((product.notional_multiplier * product.display_factor).normalize()),
        "display-factor": dec(product.display_factor),
        "security-exchange": "2",
        "sx-id": "0",
        "settlement-type": "Future",
        "strike-factor": "1.0",
        "maturity-date": expiry.isoformat(),
        "is-exercisable-weekly": True,
        "last-trade-time": "0",
        "days-to-expiration": (expiry - today).days,
        "is-closing-only": False,
        "active": expiry >= today,
        "stops-trading-at": close,
        "expires-at": close,
        "future-option-product": future_option_product_payload(product, option.option_root),
    }


def crypto_payload(asset: CryptoAsset) -> dict[str, Any]:
    """``GET /instruments/cryptocurrencies/{symbol}``: tastyware's ``Cryptocurrency``."""
    return {
        "id": asset.id,
        "symbol": asset.symbol,
        "instrument-type": CRYPTOCURRENCY,
        "short-description": asset.short_description,
        "description": f"{asset.short_description} to USD",
        "is-closing-only": False,
        "active": True,
        "tick-size": dec(asset.tick_size),
        "streamer-symbol": f"{asset.symbol}:CXTALP",
        "destination-venue-symbols": [
            {
                "id": asset.id,
                "symbol": asset.base,
                "destination-venue": "CITADEL_CRYPTOCURRENCY",
                "max-quantity-precision": 8,
                "max-price-precision": 8,
                "routable": True,
            }
        ],
    }
