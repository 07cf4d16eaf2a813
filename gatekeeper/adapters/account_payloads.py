"""An account's payloads as the broker gives them, and the account state's reads from the
broker (gatekeeper.adapters.account_state decides when to read, what to cache and what
serves).

AccountPayloads is what the order path decides on: one account's balances, positions, working
orders and trading status, their age, and the quotes read along with them. A state entry, as
AccountReads.fetch_account builds it and Redis caches it (gatekeeper.adapters.state_cache),
holds the same payloads and ``fetched_at``, the local wall clock just before the broker was
asked: ``age_of`` and ``payloads_of`` read it back; an entry cached by an older release may
lack ``trading_status``.

The reads go through the GET shared with the instrument look-ups
(gatekeeper.adapters.broker_read), with the bot's own credential and the reads' timeouts. The
broker's 401 or 403 is BrokerAuthFailed. A read that gives no data, or balances or a trading
status that are not objects, is StateUnavailable, counted as a broker error of the state fetch;
positions or working orders without ``items`` are StateUnavailable too.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from gatekeeper.adapters.broker_read import BrokerReadError, get_data, read_timeout
from gatekeeper.adapters.quote_cache import items_of
from gatekeeper.errors import StateUnavailable
from gatekeeper.metrics import Metrics
from gatekeeper.settings import Settings


@dataclass(frozen=True)
class AccountPayloads:
    """The broker's payloads for one account and their age in seconds (local wall clock)."""

    balances: Mapping[str, Any]
    positions: list[Mapping[str, Any]]
    live_orders: list[Mapping[str, Any]]
    age_seconds: float
    # Cached quotes read in the same Redis round trip (the symbols the account needed last
    # time); None where absent. Passed back to StateSource.quotes.
    prefetched_quotes: Mapping[str, Any] = field(default_factory=dict)
    # /trading-status: the broker's own restrictions (closing only, frozen, margin call).
    trading_status: Mapping[str, Any] = field(default_factory=dict)


def age_of(entry: Mapping[str, Any]) -> float:
    """How old a state entry is, in seconds since it was fetched (never negative)."""
    return max(0.0, time.time() - float(entry["fetched_at"]))


def payloads_of(entry: Mapping[str, Any], quotes: Mapping[str, Any]) -> AccountPayloads:
    """A state entry's payloads, its age now, and ``quotes`` (read along with it)."""
    return AccountPayloads(
        entry["balances"],
        entry["positions"],
        entry["live_orders"],
        age_of(entry),
        quotes,
        # an entry cached by an older release has none: the next refresh brings it
        entry.get("trading_status", {}),
    )


class AccountReads:
    """The account state's reads from the broker; one per StateSource (shares its
    ClientSession)."""

    def __init__(
        self, session: aiohttp.ClientSession, settings: Settings, metrics: Metrics
    ) -> None:
        self._session = session
        self._upstream = settings.proxy.upstream_url
        self._risk = settings.risk
        self._metrics = metrics
        self._timeout = read_timeout(settings)

    async def fetch_account(
        self, account: str, client_headers: Mapping[str, str]
    ) -> dict[str, Any]:
        """A new state entry of ``account``, read with ``client_headers`` (its four reads at
        once). Raises BrokerAuthFailed or StateUnavailable."""
        base = f"/accounts/{account}"
        fetched_at = time.time()  # before the requests: the state is at least this old
        balances, positions, live, status = await asyncio.gather(
            self.get(base + "/balances", client_headers),
            self.get(base + "/positions", client_headers),
            self.get(base + "/orders/live", client_headers),
            self.get(base + "/trading-status", client_headers),
        )
        if not isinstance(balances, Mapping):
            raise self._broker_error("balances")
        if not isinstance(status, Mapping):
            raise self._broker_error("trading-status")
        return {
            "fetched_at": fetched_at,
            "balances": balances,
            "positions": items_of(positions),
            "live_orders": items_of(live),
            "trading_status": status,
        }

    async def get(
        self,
        path: str,
        client_headers: Mapping[str, str],
        query: list[tuple[str, str]] | None = None,
    ) -> Any:
        """The ``data`` of the broker's answer to ``GET path`` (the quote cache's BrokerGet).
        Raises BrokerAuthFailed or StateUnavailable."""
        try:
            return await get_data(
                self._session,
                self._upstream + path,
                client_headers,
                self._timeout,
                label=path.rsplit("/", 1)[-1],
                query=query,
            )
        except BrokerReadError as error:
            raise self._broker_error(error.what) from None

    def _broker_error(self, what: str) -> StateUnavailable:
        self._metrics.state_fetch_errors.labels("broker").inc()
        return StateUnavailable(
            f"state_unavailable: the account state could not be fetched from the broker ({what})"
            f" and no copy younger than {self._risk.max_state_age_seconds:g}s is cached for"
            " these credentials"
        )
