"""Account state for the order path: balances, positions, working orders and quotes, fetched
from the broker with the bot's own credentials and cached in Redis.

Fresh (younger than ``state_ttl_seconds``) state is used as is; older state is refetched, and
if the broker cannot answer, cached state younger than ``max_state_age_seconds`` is still
used; beyond that the order is rejected (StateUnavailable). Redis holds nothing that cannot be
rebuilt: losing it only costs a refetch. A Redis error is reported (CacheUnavailable): the
order path fails closed rather than guess which replica saw what.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from multidict import CIMultiDict
from redis.asyncio import Redis
from redis.exceptions import RedisError

from gatekeeper.errors import CacheUnavailable, StateUnavailable
from gatekeeper.metrics import Metrics
from gatekeeper.settings import Settings

log = logging.getLogger(__name__)

STATE_KEY = "gk:state:v1:{account}"
QUOTE_KEY = "gk:quote:v1:{symbol}"
MAX_QUOTES_PER_CALL = 100
# Forwarded to the broker with the state requests; everything else (cookies...) is not.
_CLIENT_HEADERS = ("Authorization", "User-Agent", "Accept-Version")

# /market-data/by-type query key per instrument type.
QUERY_KEYS = {
    "Equity": "equity",
    "Equity Option": "equity-option",
    "Future": "future",
    "Future Option": "future-option",
    "Cryptocurrency": "cryptocurrency",
}


@dataclass(frozen=True)
class AccountPayloads:
    """The broker's payloads for one account and their age in seconds (local wall clock)."""

    balances: Mapping[str, Any]
    positions: list[Mapping[str, Any]]
    live_orders: list[Mapping[str, Any]]
    age_seconds: float


class StateSource:
    """Fetches and caches account state; one per proxy app (shares its ClientSession)."""

    def __init__(
        self, session: aiohttp.ClientSession, redis: Redis, settings: Settings, metrics: Metrics
    ) -> None:
        self._session = session
        self._redis = redis
        self._upstream = settings.proxy.upstream_url
        self._risk = settings.risk
        self._metrics = metrics
        self._refreshing: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._timeout = aiohttp.ClientTimeout(
            total=min(settings.proxy.total_timeout_seconds, self._risk.max_state_age_seconds),
            connect=settings.proxy.connect_timeout_seconds,
        )

    async def account(self, account: str, client_headers: Mapping[str, str]) -> AccountPayloads:
        """The account's payloads, fresh enough (see the module docstring). Concurrent
        requests for one account share a single refresh."""
        key = STATE_KEY.format(account=account)
        cached = await self._cache_get(key)
        if cached is not None and self._age(cached) < self._risk.state_ttl_seconds:
            return self._payloads(cached)
        refresh = self._refreshing.get(account)
        if refresh is None:
            refresh = asyncio.ensure_future(self._refresh(key, account, client_headers, cached))
            self._refreshing[account] = refresh
            refresh.add_done_callback(lambda _: self._refreshing.pop(account, None))
        return self._payloads(await asyncio.shield(refresh))

    async def _refresh(
        self,
        key: str,
        account: str,
        client_headers: Mapping[str, str],
        cached: dict[str, Any] | None,
    ) -> dict[str, Any]:
        try:
            fetched = await self._fetch_account(account, client_headers)
        except StateUnavailable:
            if cached is not None and self._age(cached) < self._risk.max_state_age_seconds:
                log.warning("account state refresh failed; using cached state")
                return cached
            raise
        await self._cache_set(key, fetched, self._risk.max_state_age_seconds)
        return fetched

    async def invalidate(self, account: str) -> None:
        """Drop the cached state after an order was forwarded (it changed the account)."""
        try:
            await self._redis.delete(STATE_KEY.format(account=account))
        except RedisError as error:
            # The next order would see state up to state_ttl old, but in-flight reservations
            # in Postgres still cover this order, so limits hold.
            self._metrics.state_fetch_errors.labels("cache").inc()
            log.warning("could not drop cached account state: %s", type(error).__name__)

    async def quotes(
        self, symbols: Iterable[tuple[str, str]], client_headers: Mapping[str, str]
    ) -> list[Mapping[str, Any]]:
        """Quotes for ``(instrument_type, symbol)`` pairs; missing ones are simply absent."""
        wanted = {symbol: kind for kind, symbol in symbols if kind in QUERY_KEYS}
        if not wanted:
            return []
        names = list(wanted)
        try:
            cached = await self._redis.mget([QUOTE_KEY.format(symbol=s) for s in names])
        except RedisError as error:
            raise self._cache_error(error) from None
        found = [json.loads(raw) for raw in cached if raw is not None]
        missing = [s for s, raw in zip(names, cached, strict=True) if raw is None]
        for start in range(0, len(missing), MAX_QUOTES_PER_CALL):
            chunk = missing[start : start + MAX_QUOTES_PER_CALL]
            query = [(QUERY_KEYS[wanted[s]], s) for s in chunk]
            data = await self._get("/market-data/by-type", client_headers, query)
            items = _items(data)
            found.extend(items)
            await self._cache_quotes(items)
        return found

    # -- internals ---------------------------------------------------------------------------

    @staticmethod
    def _age(entry: Mapping[str, Any]) -> float:
        return max(0.0, time.time() - float(entry["fetched_at"]))

    def _payloads(self, entry: Mapping[str, Any]) -> AccountPayloads:
        return AccountPayloads(
            entry["balances"], entry["positions"], entry["live_orders"], self._age(entry)
        )

    async def _fetch_account(
        self, account: str, client_headers: Mapping[str, str]
    ) -> dict[str, Any]:
        base = f"/accounts/{account}"
        fetched_at = time.time()  # before the requests: the state is at least this old
        balances, positions, live = await asyncio.gather(
            self._get(base + "/balances", client_headers),
            self._get(base + "/positions", client_headers),
            self._get(base + "/orders/live", client_headers),
        )
        if not isinstance(balances, Mapping):
            raise self._broker_error("balances")
        return {
            "fetched_at": fetched_at,
            "balances": balances,
            "positions": _items(positions),
            "live_orders": _items(live),
        }

    async def _get(
        self,
        path: str,
        client_headers: Mapping[str, str],
        query: list[tuple[str, str]] | None = None,
    ) -> Any:
        headers = CIMultiDict(
            (name, client_headers[name]) for name in _CLIENT_HEADERS if name in client_headers
        )
        headers["Accept"] = "application/json"
        try:
            async with self._session.get(
                self._upstream + path,
                params=query,
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,
            ) as response:
                if response.status != 200:
                    raise self._broker_error(
                        f"{path.rsplit('/', 1)[-1]} answered {response.status}"
                    )
                body = await response.read()
        except (aiohttp.ClientError, TimeoutError) as error:
            raise self._broker_error(type(error).__name__) from None
        try:
            return json.loads(body)["data"]
        except (ValueError, KeyError, TypeError):
            raise self._broker_error("unreadable answer") from None

    def _broker_error(self, what: str) -> StateUnavailable:
        self._metrics.state_fetch_errors.labels("broker").inc()
        return StateUnavailable(
            f"state_unavailable: the account state could not be fetched from the broker ({what})"
            f" and no copy younger than {self._risk.max_state_age_seconds:g}s is cached"
        )

    def _cache_error(self, error: RedisError) -> CacheUnavailable:
        self._metrics.state_fetch_errors.labels("cache").inc()
        return CacheUnavailable(
            f"cache_unavailable: the account-state cache (Redis) failed ({type(error).__name__})"
        )

    async def _cache_get(self, key: str) -> dict[str, Any] | None:
        try:
            raw = await self._redis.get(key)
        except RedisError as error:
            raise self._cache_error(error) from None
        if raw is None:
            return None
        entry: dict[str, Any] = json.loads(raw)
        return entry

    async def _cache_set(self, key: str, entry: Mapping[str, Any], ttl: float) -> None:
        try:
            await self._redis.set(key, json.dumps(entry), px=max(1, int(ttl * 1000)))
        except RedisError as error:
            raise self._cache_error(error) from None

    async def _cache_quotes(self, items: list[Mapping[str, Any]]) -> None:
        ttl = max(1, int(self._risk.quote_ttl_seconds * 1000))
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for item in items:
                    symbol = item.get("symbol")
                    if isinstance(symbol, str):
                        pipe.set(QUOTE_KEY.format(symbol=symbol), json.dumps(item), px=ttl)
                await pipe.execute()
        except RedisError as error:
            raise self._cache_error(error) from None


def _items(data: Any) -> list[Mapping[str, Any]]:
    items = data.get("items") if isinstance(data, Mapping) else None
    if not isinstance(items, list):
        raise StateUnavailable("state_unavailable: the broker's answer has no items")
    return [item for item in items if isinstance(item, Mapping)]
