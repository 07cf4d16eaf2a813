"""Instruments for the order path: each symbol's underlying group, contract multiplier and
quoted underlying (:class:`~gatekeeper.core.instruments.Instrument`), established, not guessed.

Stock and crypto need no request; an equity option held says enough in its position payload;
anything else is looked up at ``GET /instruments/{equity-options|futures|future-options}/
{symbol}`` with the bot's own credentials (the headers and timeouts of the account-state
reads, :mod:`gatekeeper.adapters.broker_read`), concurrently, and cached in Redis for
``risk.instrument_ttl_seconds`` (instruments do not change intraday) under
``gk:instrument:v1:{type}:{symbol}``. The cache holds the built fields only (group,
multiplier, underlying), never anything from the request.

An instrument the broker does not know (404) is simply absent from the result: the core then
rejects the order ``price_unavailable``, naming it. Any other broker failure is
StateUnavailable, a payload not understood AccountStateInvalid and a Redis error
CacheUnavailable: the order path fails closed.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import replace
from decimal import Decimal
from typing import Any
from urllib.parse import quote

import aiohttp
from redis.asyncio import Redis
from redis.exceptions import RedisError
from yarl import URL

from gatekeeper.adapters.broker_read import BrokerReadError, get_data, read_timeout
from gatekeeper.core.errors import AccountStateInvalid
from gatekeeper.core.instruments import (
    Instrument,
    instrument_from_payload,
    instrument_from_position,
    plain,
)
from gatekeeper.core.symbols import InstrumentType, is_valid_symbol, parse_option_symbol
from gatekeeper.errors import CacheUnavailable, StateUnavailable
from gatekeeper.metrics import Metrics
from gatekeeper.settings import Settings

log = logging.getLogger(__name__)

INSTRUMENT_KEY = "gk:instrument:v1:{kind}:{symbol}"
# Look-ups in flight at once per resolve: a cold cache and a book full of futures must not
# take every connection of the shared session.
MAX_CONCURRENT_LOOKUPS = 16

PATHS = {
    InstrumentType.EQUITY_OPTION: "equity-options",
    InstrumentType.FUTURE: "futures",
    InstrumentType.FUTURE_OPTION: "future-options",
}


def instrument_url(upstream: str, instrument_type: InstrumentType, symbol: str) -> URL:
    """The broker's URL of one instrument, with the path bytes tastyware sends.

    Futures drop their leading ``/`` (``/ESZ6`` -> ``futures/ESZ6``); every other character
    outside ``A-Z a-z 0-9 - . _ ~`` is percent-encoded, so an OCC symbol's spaces are ``%20``
    and a future option's ``/`` is ``%2F`` (``./ESZ6 EW4Z6 261218C6000`` stays one segment).
    ``encoded=True`` keeps aiohttp from re-quoting or normalizing the path.
    """
    name = symbol.removeprefix("/") if instrument_type is InstrumentType.FUTURE else symbol
    return URL(
        f"{upstream}/instruments/{PATHS[instrument_type]}/{quote(name, safe='')}", encoded=True
    )


class InstrumentSource:
    """Resolves symbols to instruments; one per engine (shares the proxy's ClientSession)."""

    def __init__(
        self, session: aiohttp.ClientSession, redis: Redis, settings: Settings, metrics: Metrics
    ) -> None:
        self._session = session
        self._redis = redis
        self._upstream = settings.proxy.upstream_url
        self._ttl_ms = max(1, int(settings.risk.instrument_ttl_seconds * 1000))
        self._metrics = metrics
        self._timeout = read_timeout(settings)

    async def resolve(
        self,
        wanted: Iterable[tuple[str, str]],
        client_headers: Mapping[str, str],
        positions: Iterable[Mapping[str, Any]] = (),
    ) -> dict[str, Instrument]:
        """The instruments of ``(instrument_type, symbol)`` pairs, by symbol.

        ``positions`` (``/positions`` items) are used where they say enough; the rest come
        from Redis, else from the broker with ``client_headers`` (then cached). Unknown
        instrument types, malformed symbols and instruments the broker does not know are
        absent. Raises StateUnavailable, AccountStateInvalid or CacheUnavailable.
        """
        held = {
            instrument.symbol: instrument
            for instrument in map(instrument_from_position, positions)
            if instrument is not None
        }
        found: dict[str, Instrument] = {}
        todo: dict[str, InstrumentType] = {}
        for kind, symbol in wanted:
            try:
                instrument_type = InstrumentType(kind)
            except ValueError:
                continue
            known = held.get(symbol) or plain(symbol, instrument_type)
            if known is not None and known.instrument_type is instrument_type:
                found[symbol] = known
            elif is_valid_symbol(instrument_type, symbol):
                todo[symbol] = instrument_type
        if todo:
            cached = await self._cache_get(todo)
            found.update(cached)
            missing = {s: t for s, t in todo.items() if s not in cached}
            if missing:
                found.update(await self._fetch_all(missing, client_headers))
        return await self._future_option_multipliers(found, client_headers)

    async def _future_option_multipliers(
        self, found: dict[str, Instrument], client_headers: Mapping[str, str]
    ) -> dict[str, Instrument]:
        """A future option is worth its underlying future's notional multiplier per point.

        TastyTrade's documented future-option payload shows ``multiplier`` 1.0 where one
        contract moves 50 dollars a point (/ES): never value one below its future's
        ``notional-multiplier``. An option whose future cannot be resolved is left out (the
        core then refuses it ``price_unavailable``)."""
        options = [i for i in found.values() if i.instrument_type is InstrumentType.FUTURE_OPTION]
        if not options:
            return found
        futures = {i.underlying for i in options}
        known = {s: found[s] for s in futures if s in found}
        wanted = [(InstrumentType.FUTURE.value, s) for s in futures if s not in known]
        if wanted:
            known.update(await self.resolve(wanted, client_headers))
        result = dict(found)
        for option in options:
            future = known.get(option.underlying)
            if future is None:
                del result[option.symbol]
            elif future.multiplier > option.multiplier:
                result[option.symbol] = replace(option, multiplier=future.multiplier)
        return result

    # -- broker ------------------------------------------------------------------------------

    async def _fetch_all(
        self, todo: Mapping[str, InstrumentType], client_headers: Mapping[str, str]
    ) -> dict[str, Instrument]:
        limit = asyncio.Semaphore(MAX_CONCURRENT_LOOKUPS)

        async def one(symbol: str, instrument_type: InstrumentType) -> Instrument | None:
            async with limit:
                return await self._fetch(symbol, instrument_type, client_headers)

        # Every look-up runs to its end (bounded by the timeout), so those that succeeded are
        # cached even when another failed and the order is refused.
        results = await asyncio.gather(
            *(one(s, t) for s, t in todo.items()), return_exceptions=True
        )
        fetched = [r for r in results if isinstance(r, Instrument)]
        await self._cache_set(fetched)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return {instrument.symbol: instrument for instrument in fetched}

    async def _fetch(
        self, symbol: str, instrument_type: InstrumentType, client_headers: Mapping[str, str]
    ) -> Instrument | None:
        path = PATHS[instrument_type]
        try:
            data = await get_data(
                self._session,
                instrument_url(self._upstream, instrument_type, symbol),
                client_headers,
                self._timeout,
                label=path,
            )
        except BrokerReadError as error:
            if error.status == 404:
                log.info("the broker knows no %s %s", instrument_type, symbol)
                return None
            raise self._broker_error(symbol, error.what) from None
        if not isinstance(data, Mapping):
            raise self._broker_error(symbol, "unreadable answer")
        try:
            instrument = instrument_from_payload(instrument_type, data)
            if instrument.symbol != symbol:
                raise AccountStateInvalid(f"the broker answered {path}/{symbol} with another one")
        except AccountStateInvalid:
            self._metrics.state_fetch_errors.labels("invalid").inc()
            raise
        return instrument

    def _broker_error(self, symbol: str, what: str) -> StateUnavailable:
        self._metrics.state_fetch_errors.labels("broker").inc()
        return StateUnavailable(
            f"state_unavailable: the instrument {symbol} could not be fetched from the broker"
            f" ({what})"
        )

    # -- cache -------------------------------------------------------------------------------

    def _cache_error(self, error: RedisError) -> CacheUnavailable:
        self._metrics.state_fetch_errors.labels("cache").inc()
        return CacheUnavailable(
            f"cache_unavailable: the instrument cache (Redis) failed ({type(error).__name__})"
        )

    async def _cache_get(self, todo: Mapping[str, InstrumentType]) -> dict[str, Instrument]:
        keys = [INSTRUMENT_KEY.format(kind=t.value, symbol=s) for s, t in todo.items()]
        try:
            raws = await self._redis.mget(keys)
        except RedisError as error:
            raise self._cache_error(error) from None
        found: dict[str, Instrument] = {}
        for (symbol, instrument_type), raw in zip(todo.items(), raws, strict=True):
            instrument = None if raw is None else _decode(raw, symbol, instrument_type)
            if instrument is not None:
                found[symbol] = instrument
        return found

    async def _cache_set(self, instruments: list[Instrument]) -> None:
        if not instruments:
            return
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for instrument in instruments:
                    key = INSTRUMENT_KEY.format(
                        kind=instrument.instrument_type.value, symbol=instrument.symbol
                    )
                    pipe.set(key, _encode(instrument), px=self._ttl_ms)
                await pipe.execute()
        except RedisError as error:
            raise self._cache_error(error) from None


def _encode(instrument: Instrument) -> str:
    return json.dumps(
        {
            "group": instrument.group,
            "multiplier": str(instrument.multiplier),
            "underlying": instrument.underlying,
            "underlying-type": instrument.underlying_type.value,
        }
    )


def _decode(raw: bytes | str, symbol: str, instrument_type: InstrumentType) -> Instrument | None:
    """A cached entry; ``None`` (looked up again, then overwritten) if it is not readable."""
    try:
        entry = json.loads(raw)
        return Instrument(
            symbol,
            instrument_type,
            group=str(entry["group"]),
            multiplier=Decimal(str(entry["multiplier"])),
            underlying=str(entry["underlying"]),
            underlying_type=InstrumentType(entry["underlying-type"]),
            option=parse_option_symbol(instrument_type, symbol),
        )
    except (ValueError, KeyError, TypeError, ArithmeticError):
        log.warning("unreadable cached instrument %s: looking it up again", symbol)
        return None
