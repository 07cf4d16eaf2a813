"""Quotes for the order path: read from the broker's ``/market-data/by-type`` with the bot's
own credential and cached in Redis, shared by every account (quotes are public).

A cached quote serves until ``quote_ttl_seconds``; one this process cached that is about to
expire is refreshed in the background while it still serves. Each account's last needed
symbols are remembered (``hint``): the account state's read fetches their cached quotes in
the same Redis round trip (gatekeeper.adapters.account_state), so a warm account's order
reads no quote again. A quote's parsed form is kept per version, so the order path's parse
memo (gatekeeper.core.payloads.PayloadMemo) meets the same object while it is unchanged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from gatekeeper.errors import BrokerAuthFailed, CacheUnavailable, StateUnavailable
from gatekeeper.settings import RiskSettings

log = logging.getLogger(__name__)

QUOTE_KEY = "gk:quote:v1:{symbol}"
MAX_QUOTES_PER_CALL = 100
# A quote this process cached is refreshed in the background once it is older than this
# share of quote_ttl_seconds.
REFRESH_AHEAD = 0.75
# Entries kept per process (hints per account, parsed quotes and ages per symbol): beyond it,
# start over.
MAX_REMEMBERED = 1024

# /market-data/by-type query key per instrument type. "Index" is no instrument-type: an equity
# option's underlying may be a stock (SPY) or an index (SPX, quoted under the `index` key) and
# nothing in the option says which, so its quote is asked as ("Equity", s) and ("Index", s):
# both keys in one request, and whichever the broker knows answers.
QUERY_KEYS = {
    "Equity": "equity",
    "Index": "index",
    "Equity Option": "equity-option",
    "Future": "future",
    "Future Option": "future-option",
    "Cryptocurrency": "cryptocurrency",
}

# (path, client headers, query) -> the broker's ``data``; raises StateUnavailable or
# BrokerAuthFailed (the account state's broker read).
BrokerGet = Callable[[str, Mapping[str, str], list[tuple[str, str]] | None], Awaitable[Any]]


def items_of(data: Any) -> list[Mapping[str, Any]]:
    """The ``items`` of a broker list answer."""
    items = data.get("items") if isinstance(data, Mapping) else None
    if not isinstance(items, list):
        raise StateUnavailable("state_unavailable: the broker's answer has no items")
    return [item for item in items if isinstance(item, Mapping)]


class QuoteCache:
    """The shared quote cache; one per state source (see the module docstring)."""

    def __init__(
        self,
        redis: Redis,
        risk: RiskSettings,
        get: BrokerGet,
        cache_error: Callable[[RedisError], CacheUnavailable],
    ) -> None:
        self._redis = redis
        self._risk = risk
        self._get = get
        self._cache_error = cache_error
        self._hint: dict[str, tuple[str, ...]] = {}  # account -> symbols needed last
        self._parsed: dict[str, tuple[bytes | str, Mapping[str, Any]]] = {}  # by symbol
        self._cached_at: dict[str, float] = {}  # symbol -> when this process cached it
        self._refreshes: dict[str, asyncio.Task[None]] = {}  # by symbol

    def hint(self, account: str) -> tuple[str, ...]:
        """The symbols ``account`` needed last (their cached quotes ride on its state's read)."""
        return self._hint.get(account, ())

    @staticmethod
    def keys(symbols: Iterable[str]) -> list[str]:
        """The Redis keys of ``symbols``' cached quotes."""
        return [QUOTE_KEY.format(symbol=s) for s in symbols]

    def pending(self) -> list[asyncio.Task[None]]:
        """The background refreshes still running (cancelled at shutdown by the owner)."""
        return list(self._refreshes.values())

    async def quotes(
        self,
        symbols: Iterable[tuple[str, str]],
        client_headers: Mapping[str, str],
        prefetched: Mapping[str, Any],
        account: str | None = None,
    ) -> list[Mapping[str, Any]]:
        """Quotes for ``(instrument_type, symbol)`` pairs (``"Index"`` too, see QUERY_KEYS);
        missing ones are simply absent. A symbol named with several types is asked under each
        of their keys. Those in ``prefetched`` (read with the account's state) are not read
        again; cached quotes about to expire are refreshed in the background while they still
        serve."""
        wanted: dict[str, tuple[str, ...]] = {}  # symbol -> its query keys
        for kind, symbol in symbols:
            key = QUERY_KEYS.get(kind)
            if key is not None and key not in wanted.get(symbol, ()):
                wanted[symbol] = (*wanted.get(symbol, ()), key)
        if account is not None:
            self._remember_hint(account, tuple(wanted))
        if not wanted:
            return []
        names = [s for s in wanted if prefetched.get(s) is None]
        try:
            read = await self._redis.mget(self.keys(names)) if names else []
        except RedisError as error:
            raise self._cache_error(error) from None
        fresh = dict(zip(names, read, strict=True))
        cached = {s: fresh[s] if s in fresh else prefetched[s] for s in wanted}
        found = [self._quote(s, raw) for s, raw in cached.items() if raw is not None]
        missing = [s for s, raw in cached.items() if raw is None]
        found.extend(await self._fetch(missing, wanted, client_headers))
        self._refresh_ahead(
            [s for s, raw in cached.items() if raw is not None], wanted, client_headers
        )
        return found

    async def _fetch(
        self,
        names: list[str],
        keys: Mapping[str, tuple[str, ...]],
        client_headers: Mapping[str, str],
    ) -> list[Mapping[str, Any]]:
        found: list[Mapping[str, Any]] = []
        # The broker's limit counts symbols under every key: a symbol asked twice counts twice.
        asked = [(key, s) for s in names for key in keys[s]]
        for start in range(0, len(asked), MAX_QUOTES_PER_CALL):
            query = asked[start : start + MAX_QUOTES_PER_CALL]
            data = await self._get("/market-data/by-type", client_headers, query)
            items = items_of(data)
            found.extend(items)
            await self._cache(items)
        return found

    def _refresh_ahead(
        self,
        names: list[str],
        keys: Mapping[str, tuple[str, ...]],
        client_headers: Mapping[str, str],
    ) -> None:
        due = time.monotonic() - self._risk.quote_ttl_seconds * REFRESH_AHEAD
        # Only quotes this process cached (it knows their age); others expire as before.
        stale = [
            s for s in names if self._cached_at.get(s, due + 1) <= due and s not in self._refreshes
        ]
        if not stale:
            return
        task = asyncio.create_task(self._fetch_quietly(stale, dict(keys), client_headers))
        for symbol in stale:
            self._refreshes[symbol] = task
        task.add_done_callback(lambda _: self._refreshes_done(stale, task))

    async def _fetch_quietly(
        self,
        names: list[str],
        keys: Mapping[str, tuple[str, ...]],
        client_headers: Mapping[str, str],
    ) -> None:
        try:
            await self._fetch(names, keys, client_headers)
        except (StateUnavailable, CacheUnavailable, BrokerAuthFailed):
            # Counted already; the next order that needs these quotes fetches them itself.
            log.warning("background quote refresh failed")

    def _refreshes_done(self, names: list[str], task: asyncio.Task[None]) -> None:
        for symbol in names:
            if self._refreshes.get(symbol) is task:
                del self._refreshes[symbol]

    def _quote(self, symbol: str, raw: bytes | str) -> Mapping[str, Any]:
        """A cached quote, parsed once per version (the same object while it is unchanged)."""
        parsed = self._parsed.get(symbol)
        if parsed is not None and parsed[0] == raw:
            return parsed[1]
        quote: Mapping[str, Any] = orjson.loads(raw)
        if len(self._parsed) >= MAX_REMEMBERED and symbol not in self._parsed:
            self._parsed.clear()
        self._parsed[symbol] = (raw, quote)
        return quote

    def _remember_hint(self, account: str, symbols: tuple[str, ...]) -> None:
        if len(self._hint) >= MAX_REMEMBERED and account not in self._hint:
            self._hint.clear()
        self._hint[account] = symbols

    async def _cache(self, items: list[Mapping[str, Any]]) -> None:
        ttl = max(1, int(self._risk.quote_ttl_seconds * 1000))
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for item in items:
                    symbol = item.get("symbol")
                    if isinstance(symbol, str):
                        pipe.set(QUOTE_KEY.format(symbol=symbol), orjson.dumps(item), px=ttl)
                await pipe.execute()
        except RedisError as error:
            raise self._cache_error(error) from None
        cached_at = time.monotonic()
        if len(self._cached_at) + len(items) > MAX_REMEMBERED:
            self._cached_at.clear()
        for item in items:
            symbol = item.get("symbol")
            if isinstance(symbol, str):
                self._cached_at[symbol] = cached_at
