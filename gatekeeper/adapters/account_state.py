"""Account state for the order path: balances, positions, working orders and quotes, fetched
from the broker with the bot's own credentials (gatekeeper.adapters.account_payloads) and
cached in Redis (gatekeeper.adapters.state_cache).

Fresh (younger than ``state_ttl_seconds``) state is used as is, and refreshed in the background
as it nears expiry (cached quotes likewise); older state is refetched (the order waits), and
if the broker cannot answer, cached state younger than ``max_state_age_seconds`` is still
used; beyond that the order is rejected (StateUnavailable). Redis holds nothing that cannot be
rebuilt: losing it only costs a refetch. A Redis error is reported (CacheUnavailable): the
order path fails closed rather than guess which replica saw what.

Cached state is keyed by account, so it serves a request only if the broker let the request's
credential read that account recently (:mod:`gatekeeper.adapters.credentials`); any other
request fetches the state with its own credential (which, answered, confirms it), and
concurrent requests share a refresh only when they carry the same credential. The broker's
401 or 403 is BrokerAuthFailed and drops the credential's confirmation; a cached copy is
never the fallback for it. An operator's check (validate_trade, check-order) given no broker
credential may use the cached state: the admin API has authorized the operator for the
account. Quotes and instruments are public: their caches are shared
(gatekeeper.adapters.quote_cache, gatekeeper.adapters.instruments); the quotes an account
needed last are read in the same Redis round trip as its state.

After an order is forwarded the state is not dropped: the order's reservation counts it until
the state shows it (gatekeeper.adapters.decisions), and ``order_forwarded`` refreshes the
state in the background, so the account's next order does not wait for the broker. The
account streamer (gatekeeper.adapters.account_streamer) applies the broker's pushed changes
to the cached state (``update_cached``) and re-applies them to a snapshot fetched while they
arrived (``on_snapshot``). Neither makes a state younger: its age is still that of its last
snapshot, and the age rules above hold unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import Any

import aiohttp
from redis.asyncio import Redis

from gatekeeper.adapters.account_changes import Change, Entry, answered_changes, apply_changes
from gatekeeper.adapters.account_payloads import AccountPayloads, AccountReads, age_of, payloads_of
from gatekeeper.adapters.credentials import CredentialDigests, confirmed_key
from gatekeeper.adapters.quote_cache import REFRESH_AHEAD, QuoteCache
from gatekeeper.adapters.state_cache import STATE_KEY, StateCache
from gatekeeper.adapters.state_refresh import BackgroundRefreshes
from gatekeeper.errors import BrokerAuthFailed, CacheUnavailable, StateUnavailable
from gatekeeper.metrics import Metrics
from gatekeeper.settings import Settings

log = logging.getLogger(__name__)

# Fresh state older than REFRESH_AHEAD (a share of state_ttl_seconds, as for quotes) is
# refreshed in the background, so a busy account's orders rarely wait for the broker; the
# state used stays within the TTL.


class StateSource:
    """Fetches and caches account state; one per proxy app (shares its ClientSession)."""

    def __init__(
        self, session: aiohttp.ClientSession, redis: Redis, settings: Settings, metrics: Metrics
    ) -> None:
        self._reads = AccountReads(session, settings, metrics)
        self._cache = StateCache(redis, settings.risk, metrics)
        self._risk = settings.risk
        self._digests = CredentialDigests(settings.risk)
        # By account and credential digest: a request never waits on another's credential.
        self._refreshing: dict[tuple[str, str | None], asyncio.Future[dict[str, Any]]] = {}
        self._quotes = QuoteCache(redis, settings.risk, self._reads.get, self._cache.error)
        # Told (account, headers) each time the broker confirms a credential for an account
        # (gatekeeper.stop_actions: a stop's cancels wait for one). Must not raise or block.
        self.on_confirmed: Callable[[str, Mapping[str, str]], None] | None = None
        # Given (account, snapshot) before a snapshot fetched from the broker is cached; returns
        # it with the changes streamed since it was fetched (the account streamer's). Must not
        # block.
        self.on_snapshot: Callable[[str, Entry], Entry] | None = None
        self._refreshes = BackgroundRefreshes(settings.risk, self._refresh_in_background)
        self._answers: set[asyncio.Task[None]] = set()  # answered orders being cached
        self._answered: dict[str, list[Change]] = {}  # by account, not yet being written
        self._answering: dict[str, asyncio.Task[None]] = {}  # the account's writer
        self._closing = False

    async def account(
        self, account: str, client_headers: Mapping[str, str], *, operator_check: bool = False
    ) -> AccountPayloads:
        """The account's payloads, fresh enough, for this request's credential (see the module
        docstring). Concurrent requests with one credential share a single refresh; fresh
        state that is about to expire is refreshed in the background while it still serves.
        Raises BrokerAuthFailed, StateUnavailable or CacheUnavailable."""
        key = STATE_KEY.format(account=account)
        digest = self._digests.of(client_headers)
        confirmation = None if digest is None else confirmed_key(digest, account)
        hint = self._quotes.hint(account)
        cached, confirmed, quotes = await self._cache.get(
            key, confirmation, self._quotes.keys(hint)
        )
        prefetched = dict(zip(hint, quotes, strict=True))
        operator_only = operator_check and digest is None
        usable = cached if confirmed or operator_only else None
        if usable is not None:
            age = age_of(usable)
            if age < self._risk.state_ttl_seconds:
                if age >= self._risk.state_ttl_seconds * REFRESH_AHEAD and not operator_only:
                    self._refresh_once(key, account, digest, client_headers)
                return payloads_of(usable, prefetched)
        if operator_only:
            return payloads_of(self._without_credentials(account, usable), prefetched)
        refresh = self._refresh_once(key, account, digest, client_headers)
        try:
            fetched = await asyncio.shield(refresh)
        except StateUnavailable:
            # The broker did not answer: state this credential may use, young enough, serves.
            if usable is not None and age_of(usable) < self._risk.max_state_age_seconds:
                log.warning("account state refresh failed; using cached state")
                return payloads_of(usable, {})
            raise
        # Quotes read before waiting for the broker could outlive quote_ttl: read them again.
        return payloads_of(fetched, {})

    def order_forwarded(
        self,
        account: str,
        client_headers: Mapping[str, str],
        answer: Mapping[str, Any] | None = None,
    ) -> None:
        """An order of ``account`` was just forwarded with ``client_headers``; ``answer``: the
        ``data`` of the broker's answer when it accepted it. The order it names, still working
        and unfilled, is added to the cached state in the background at once (as the streamer's
        notification of it would be: the next decision sees it there and its reservation
        ends); the state is refreshed in the background, at most once per
        ``refresh_after_forward_seconds`` (see ``refresh_soon``). Synchronous and never
        raises: it is called on the order path."""
        try:
            changes = answered_changes(answer) if answer else []
            if changes and not self._closing:
                self._answered.setdefault(account, []).extend(changes)
                if account not in self._answering:
                    task = asyncio.create_task(self._add_answered(account))
                    self._answering[account] = task
                    self._answers.add(task)
                    task.add_done_callback(self._answers.discard)
        except Exception as error:  # on the order path: never let it fail a request
            log.error("could not schedule an answered order's update: %s", type(error).__name__)
        self.refresh_soon(account, client_headers, after_forward=True)

    async def _add_answered(self, account: str) -> None:
        """Write the answered orders of ``account`` into its cached state, one update at a
        time: answers that arrive while one is being written go together in the next (a busy
        account's sixteen concurrent orders take a few updates, not sixteen)."""
        try:
            while changes := self._answered.pop(account, None):
                # On a cache failure (counted) the reservation counts the order until a refresh
                # shows it.
                with contextlib.suppress(CacheUnavailable):
                    await self.update_cached(account, partial(_applied, account, changes))
        finally:
            self._answering.pop(account, None)

    def refresh_soon(
        self, account: str, client_headers: Mapping[str, str], *, after_forward: bool = False
    ) -> None:
        """Fetch the account's state with ``client_headers`` in the background
        (:meth:`gatekeeper.adapters.state_refresh.BackgroundRefreshes.soon`). Never raises,
        never blocks."""
        self._refreshes.soon(account, client_headers, after_forward=after_forward)

    async def _refresh_in_background(self, account: str, headers: dict[str, str]) -> None:
        """One background refresh: after the one running for this credential, which may have
        begun before the change that prompts this one; failures logged by type only."""
        key = STATE_KEY.format(account=account)
        digest = self._digests.of(headers)
        running = self._refreshing.get((account, digest))
        if running is not None:
            # Begun before the change: it may not show it. Let it finish, then fetch anew.
            await asyncio.wait([running])
        try:
            await asyncio.shield(self._refresh_once(key, account, digest, headers))
        except (StateUnavailable, CacheUnavailable, BrokerAuthFailed) as error:
            log.warning(
                "background refresh of the state of account %s failed: %s",
                account,
                type(error).__name__,
            )

    async def aclose(self) -> None:
        """Cancel the refreshes still running (at shutdown, before the session closes)."""
        self._closing = True
        pending: list[asyncio.Future[Any]] = [
            *self._answers,
            *self._refreshes.close(),
            *self._refreshing.values(),
            *self._quotes.pending(),
        ]
        for refresh in pending:
            refresh.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def _without_credentials(self, account: str, cached: dict[str, Any] | None) -> dict[str, Any]:
        """An operator's check given no broker credential: the cached state while it may
        still be used (there is nothing to refresh it with)."""
        if cached is not None and age_of(cached) < self._risk.max_state_age_seconds:
            return cached
        raise StateUnavailable(
            f"state_unavailable: no state of account {account} younger than"
            f" {self._risk.max_state_age_seconds:g}s is cached, and no broker credentials were"
            " given to fetch it"
        )

    def _refresh_once(
        self,
        key: str,
        account: str,
        digest: str | None,
        client_headers: Mapping[str, str],
    ) -> asyncio.Future[dict[str, Any]]:
        """The running refresh of the account with this credential, or a new one (referenced
        until done)."""
        running = (account, digest)
        refresh = self._refreshing.get(running)
        if refresh is None:
            refresh = asyncio.ensure_future(self._refresh(key, account, digest, client_headers))
            self._refreshing[running] = refresh
            refresh.add_done_callback(lambda done: self._refresh_done(running, done))
        return refresh

    def _refresh_done(
        self, running: tuple[str, str | None], refresh: asyncio.Future[dict[str, Any]]
    ) -> None:
        self._refreshing.pop(running, None)
        if refresh.cancelled():
            return
        # A background refresh may have no waiter: a broker or cache failure was counted and
        # is reported to the next request that needs the state; anything else is logged.
        error = refresh.exception()
        quiet = StateUnavailable | CacheUnavailable | BrokerAuthFailed
        if error is not None and not isinstance(error, quiet):
            log.error("account state refresh failed: %s", type(error).__name__)

    async def _refresh(
        self,
        key: str,
        account: str,
        digest: str | None,
        client_headers: Mapping[str, str],
    ) -> dict[str, Any]:
        """Fetch with ``client_headers`` and cache the state; the credential that was used
        (``digest``, of these very headers) is then confirmed for the account. A broker
        failure raises StateUnavailable: each waiter decides whether its cached copy serves."""
        try:
            fetched = await self._reads.fetch_account(account, client_headers)
        except BrokerAuthFailed:
            if digest is not None:
                await self._cache.forget(confirmed_key(digest, account))
            raise
        fetched = self._with_streamed(account, fetched)
        confirmation = None if digest is None else confirmed_key(digest, account)
        await self._cache.set(key, fetched, self._risk.max_state_age_seconds, confirmation)
        if confirmation is not None and self.on_confirmed is not None:
            self.on_confirmed(account, client_headers)
        return fetched

    def _with_streamed(self, account: str, fetched: Entry) -> Entry:
        if self.on_snapshot is None:
            return fetched
        try:
            return self.on_snapshot(account, fetched)
        except Exception as error:  # the snapshot alone is the broker's word: keep it
            log.error("streamed changes not applied to a snapshot: %s", type(error).__name__)
            return fetched

    async def update_cached(self, account: str, change: Callable[[Entry], Entry | None]) -> bool:
        """Replace the account's cached state with ``change(state)`` (StateCache.update)."""
        return await self._cache.update(STATE_KEY.format(account=account), change)

    async def quotes(
        self,
        symbols: Iterable[tuple[str, str]],
        client_headers: Mapping[str, str],
        payloads: AccountPayloads | None = None,
        account: str | None = None,
    ) -> list[Mapping[str, Any]]:
        """Quotes for ``(instrument_type, symbol)`` pairs, from the shared quote cache
        (gatekeeper.adapters.quote_cache); those read along with ``payloads`` (the account's
        state) are not read again, and ``account`` remembers the symbols for its next read."""
        prefetched = {} if payloads is None else payloads.prefetched_quotes
        return await self._quotes.quotes(symbols, client_headers, prefetched, account)


def _applied(account: str, changes: list[Change], entry: Entry) -> Entry:
    return apply_changes(entry, account, changes)
