"""The account states cached in Redis (gatekeeper.adapters.account_payloads fetches them,
gatekeeper.adapters.account_state decides when).

One entry per account (``STATE_KEY``): the broker's payloads and when they were fetched, kept
``max_state_age_seconds``. It is read in one round trip together with the credential's
confirmation and the quotes the account needed last; written together with the confirmation
of the credential that fetched it; and changed atomically against other writers (answered
orders, streamed changes): in one round trip while the entry is still the version this process
last read or wrote (a compare-and-set script), else with WATCH/MULTI, retried. Each process
keeps the last entry it read or wrote per key, parsed, so the same bytes are not parsed again.
A Redis error is CacheUnavailable (counted): the order path fails closed.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError, WatchError

from gatekeeper.adapters.account_changes import Entry
from gatekeeper.errors import CacheUnavailable
from gatekeeper.metrics import Metrics
from gatekeeper.settings import RiskSettings

log = logging.getLogger(__name__)

STATE_KEY = "gk:state:v1:{account}"
# Parsed state entries kept per process: beyond it, start over.
MAX_REMEMBERED = 1024
# Attempts of an optimistic update of a cached state (WATCH/MULTI) raced by other writers.
UPDATE_ATTEMPTS = 5
# Compare-and-set in one round trip: the entry is replaced only while it is still the one
# whose SHA-1 is ARGV[1] (the version this process last read or wrote).
REPLACE_IF_UNCHANGED = """
if redis.sha1hex(redis.call('GET', KEYS[1]) or '') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""


class StateCache:
    """The cached states of one process's accounts (see the module docstring)."""

    def __init__(self, redis: Redis, risk: RiskSettings, metrics: Metrics) -> None:
        self._redis = redis
        self._risk = risk
        self._metrics = metrics
        self._confirmed_ttl_ms = max(1, int(risk.credential_ttl_seconds * 1000))
        # The last entry read or written per key, parsed: the same bytes are not parsed again.
        self._parsed: dict[str, tuple[bytes | str, dict[str, Any]]] = {}
        self._replace_if_unchanged = redis.register_script(REPLACE_IF_UNCHANGED)

    def error(self, error: RedisError) -> CacheUnavailable:
        """The order path's error for a Redis failure (counted)."""
        self._metrics.state_fetch_errors.labels("cache").inc()
        return CacheUnavailable(
            f"cache_unavailable: the account-state cache (Redis) failed ({type(error).__name__})"
        )

    async def get(
        self, key: str, confirmation: str | None, quote_keys: Sequence[str] = ()
    ) -> tuple[dict[str, Any] | None, bool, list[Any]]:
        """In one round trip: the cached state entry, whether ``confirmation`` is present and
        the values at ``quote_keys`` (None where absent)."""
        confirmations = [] if confirmation is None else [confirmation]
        try:
            raw, *rest = await self._redis.mget([key, *confirmations, *quote_keys])
        except RedisError as error:
            raise self.error(error) from None
        confirmed = confirmation is not None and rest.pop(0) is not None
        if raw is None:
            return None, confirmed, rest
        return self._parse(key, raw), confirmed, rest

    async def set(
        self, key: str, entry: dict[str, Any], ttl: float, confirmation: str | None
    ) -> None:
        """Cache the state and, in the same round trip, confirm the credential that read it."""
        raw = orjson.dumps(entry)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.set(key, raw, px=max(1, int(ttl * 1000)))
                if confirmation is not None:
                    pipe.set(confirmation, b"1", px=self._confirmed_ttl_ms)
                await pipe.execute()
        except RedisError as error:
            raise self.error(error) from None
        self._remember(key, raw, entry)

    async def forget(self, confirmation: str) -> None:
        """Drop a confirmation the broker just withdrew (best effort: it expires anyway)."""
        try:
            await self._redis.delete(confirmation)
        except RedisError as error:
            self._metrics.state_fetch_errors.labels("cache").inc()
            log.warning("could not drop a credential confirmation: %s", type(error).__name__)

    async def update(self, key: str, change: Callable[[Entry], Entry | None]) -> bool:
        """Replace the entry at ``key`` with ``change(entry)`` (a new dict; None: leave it),
        atomically against other writers (see the module docstring). The entry keeps its
        ``fetched_at`` and expires when it would have: nothing cached, or too old to be used,
        is left alone (the next order fetches it). True when a change was written. Raises
        CacheUnavailable."""
        if await self._replace_known(key, change):
            return True
        for _ in range(UPDATE_ATTEMPTS):
            try:
                async with self._redis.pipeline(transaction=True) as pipe:
                    await pipe.watch(key)
                    raw = await pipe.get(key)
                    if raw is None:
                        return False
                    entry = self._parse(key, raw)
                    remaining = float(entry["fetched_at"]) + self._risk.max_state_age_seconds
                    remaining -= time.time()
                    changed = change(entry) if remaining > 0 else None
                    if changed is None:
                        return False
                    new_raw = orjson.dumps(changed)
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.set(key, new_raw, px=max(1, int(remaining * 1000)))
                    await pipe.execute()
            except WatchError:
                continue  # written meanwhile: apply the change to what is there now
            except RedisError as error:
                raise self.error(error) from None
            self._remember(key, new_raw, changed)
            return True
        log.warning("cached state %s kept changing; a streamed update waits", key)
        return False

    async def _replace_known(self, key: str, change: Callable[[Entry], Entry | None]) -> bool:
        """``update`` in one round trip when the cached entry is still the version this
        process last read or wrote (a busy account's usual case); False when it is not, or
        the change needs a look at what is there now."""
        known = self._parsed.get(key)
        if known is None:
            return False
        raw, entry = known
        remaining = float(entry["fetched_at"]) + self._risk.max_state_age_seconds - time.time()
        changed = change(entry) if remaining > 0 else None
        if changed is None:
            return False
        new_raw = orjson.dumps(changed)
        version = hashlib.sha1(
            raw if isinstance(raw, bytes) else raw.encode(), usedforsecurity=False
        ).hexdigest()
        try:
            replaced = await self._replace_if_unchanged(
                keys=[key], args=[version, new_raw, max(1, int(remaining * 1000))]
            )
        except ResponseError as error:  # a server that runs no scripts: WATCH/MULTI does it
            log.debug("state update script refused (%s); using WATCH", type(error).__name__)
            return False
        except RedisError as error:
            raise self.error(error) from None
        if not replaced:
            return False
        self._remember(key, new_raw, changed)
        return True

    def _parse(self, key: str, raw: bytes | str) -> Entry:
        parsed = self._parsed.get(key)
        if parsed is not None and parsed[0] == raw:
            return parsed[1]
        entry: Entry = orjson.loads(raw)
        self._remember(key, raw, entry)
        return entry

    def _remember(self, key: str, raw: bytes | str, entry: dict[str, Any]) -> None:
        # Entries are never mutated (AccountPayloads is read only), so they can be shared.
        if len(self._parsed) >= MAX_REMEMBERED and key not in self._parsed:
            self._parsed.clear()
        self._parsed[key] = (raw, entry)
