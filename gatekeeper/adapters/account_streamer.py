"""TastyTrade's account streamer: the broker pushes an account's balance, position and order
changes over a WebSocket, and they are applied to the cached account state
(:mod:`gatekeeper.adapters.account_state`), so an order placed at the broker without the
gatekeeper is seen by the next decision within a second. Polling stays the fallback: while
the streamer is down, the state is fetched as before.

One connection per account, opened once a bot's credentials for it are seen (the state
source's ``on_confirmed``: the broker just let them read the account) and opened again with
the latest ones; every message sent carries the latest credentials seen. The wire protocol
(the streamer's URL, its timings, how acks and notifications are read) is
:mod:`gatekeeper.adapters.account_streamer_protocol`'s. A refused ``connect`` drops the
credentials until others are seen; a dropped connection is opened again with exponential
backoff.

Consistency: after a reconnect the state is fetched anew (a change pushed while the
connection was down is otherwise lost). The first connection follows the snapshot that
confirmed the credentials by milliseconds; a change in between is polled within
``risk.state_ttl_seconds``, as without the streamer. Changes received are kept for
JOURNAL_SECONDS and applied again to any snapshot fetched while they arrived
(``on_snapshot``): a snapshot requested before a change must not undo it, and a change never
replaces a copy with a later ``updated-at`` (balances move with every quote, unannounced).
Messages arriving together (within SETTLE_SECONDS) are applied in one write
(:mod:`gatekeeper.adapters.account_changes`). An order
reported filled without its position's change in the same batch is not applied alone (the
order would leave the reservations while its position is not yet counted): the state is
fetched anew instead. Streamed changes never make the state younger (its age is its last
snapshot's).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import json
import logging
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from gatekeeper.adapters.account_changes import (
    Change,
    Entry,
    apply_changes,
    of_account,
    split_unpaired_fills,
)
from gatekeeper.adapters.account_state import StateSource
from gatekeeper.adapters.account_streamer_protocol import (
    ACK_SECONDS,
    HEARTBEAT_SECONDS,
    SILENCE_SECONDS,
    StreamRefused,
    await_connected,
    next_batch,
    streamer_url,
)
from gatekeeper.adapters.broker_read import CLIENT_HEADERS
from gatekeeper.errors import CacheUnavailable
from gatekeeper.settings import Settings

log = logging.getLogger(__name__)

# How long closing a connection may wait for the broker's close frame.
CLOSE_SECONDS = 2.0

BACKOFF_FIRST_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 30.0
JOURNAL_SECONDS = 120.0
JOURNAL_SIZE = 1000
MAX_ACCOUNTS = 1000


class AccountStreamer:
    """The streamer connections of one process (the proxy app's)."""

    def __init__(self, state: StateSource, url: str) -> None:
        self._state = state
        self._url = url
        self._credentials: dict[str, dict[str, str]] = {}
        self._refused: dict[str, str] = {}  # account -> the Authorization value refused
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._journal: dict[str, deque[tuple[float, list[Change]]]] = {}
        self._connected: set[str] = set()
        self._streamed: set[str] = set()  # accounts connected before: a reconnect resyncs
        self._session: aiohttp.ClientSession | None = None
        self._request_ids = itertools.count(1)

    def credential_seen(self, account: str, client_headers: Mapping[str, str]) -> None:
        """The broker just let these credentials read ``account``: stream it with them (kept
        in memory only). Never raises, never blocks."""
        auth = client_headers.get("Authorization")
        if not auth or self._session is None or self._refused.get(account) == auth:
            return
        self._credentials[account] = {
            name: client_headers[name] for name in CLIENT_HEADERS if name in client_headers
        }
        if account in self._tasks or len(self._tasks) >= MAX_ACCOUNTS:
            return
        task = asyncio.create_task(self._run(account), name=f"account-streamer-{account}")
        self._tasks[account] = task
        task.add_done_callback(lambda _: self._tasks.pop(account, None))

    def connected(self, account: str) -> bool:
        """Whether ``account``'s connection is up (its ``connect`` acknowledged)."""
        return account in self._connected

    def on_snapshot(self, account: str, snapshot: Entry) -> Entry:
        """``snapshot`` with the changes received since it was fetched applied again."""
        journal = self._journal.get(account)
        if not journal:
            return snapshot
        since = float(snapshot["fetched_at"])
        changes = [c for received, batch in journal if received >= since for c in batch]
        return apply_changes(snapshot, account, changes, replay=True) if changes else snapshot

    async def start(self) -> None:
        # A session of its own: a connection per account must not take the order path's.
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, connect=ACK_SECONDS)
        )

    async def aclose(self) -> None:
        session, self._session = self._session, None
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            # A connection closing its WebSocket waits for the broker's close frame: bounded,
            # then closing the session drops what is left (shutdown must not hang on it).
            _, pending = await asyncio.wait(tasks, timeout=CLOSE_SECONDS)
            if pending:
                log.warning("account streamer: %d connections dropped at shutdown", len(pending))
        if session is not None:
            await session.close()

    # -- one account's connection --------------------------------------------------------

    async def _run(self, account: str) -> None:
        """Stream ``account`` while credentials for it are kept; reconnect with backoff."""
        delay = BACKOFF_FIRST_SECONDS
        while (headers := self._credentials.get(account)) is not None:
            opened = time.monotonic()
            try:
                await self._stream(account, headers)
                if time.monotonic() - opened > SILENCE_SECONDS:
                    delay = BACKOFF_FIRST_SECONDS  # it was up a while: start over
            except StreamRefused:
                log.warning("account streamer: credentials for %s refused; polling", account)
                if _same_credential(self._credentials.get(account), headers):
                    del self._credentials[account]
                    self._refused[account] = headers["Authorization"]
                continue
            except (aiohttp.ClientError, TimeoutError, ValueError) as error:
                log.warning(
                    "account streamer for %s unavailable (%s); polling, retry in %.1fs",
                    account,
                    type(error).__name__,
                    delay,
                )
            finally:
                self._connected.discard(account)
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))  # noqa: S311 - jitter
            delay = min(delay * 2, BACKOFF_MAX_SECONDS)

    async def _stream(self, account: str, headers: dict[str, str]) -> None:
        """One connection, until it closes. Raises StreamRefused, aiohttp.ClientError,
        TimeoutError or ValueError (an unreadable message)."""
        session = self._session
        if session is None:
            raise aiohttp.ClientConnectionError("closed")
        sent = {name: value for name, value in headers.items() if name != "Authorization"}
        try:
            ws = await session.ws_connect(
                self._url,
                headers={**sent, "Authorization": headers["Authorization"]},
                timeout=aiohttp.ClientWSTimeout(ws_close=CLOSE_SECONDS),
            )
        except aiohttp.WSServerHandshakeError as error:
            if error.status in (401, 403):
                raise StreamRefused from None
            raise
        async with ws:
            await self._send(ws, account, "connect", [account])
            early = await await_connected(ws)
            if account in self._streamed:
                self._state.refresh_soon(account, headers)  # changes missed while down
            self._streamed.add(account)
            self._connected.add(account)
            heartbeat = asyncio.create_task(self._heartbeat(ws, account))
            try:
                if early:
                    await self._apply(account, early)
                while True:
                    batch = await next_batch(ws)
                    if batch is None:
                        return
                    await self._apply(account, batch)
            finally:
                heartbeat.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await heartbeat

    async def _send(
        self, ws: aiohttp.ClientWebSocketResponse, account: str, action: str, value: Any = None
    ) -> None:
        # The latest credential seen: a bot's tokens last 15 minutes.
        headers = self._credentials.get(account)
        if headers is None:
            raise aiohttp.ClientConnectionError("credentials withdrawn")
        message: dict[str, Any] = {
            "auth-token": headers["Authorization"],
            "action": action,
            "request-id": next(self._request_ids),
        }
        if value is not None:
            message["value"] = value
        await ws.send_str(json.dumps(message))

    async def _heartbeat(self, ws: aiohttp.ClientWebSocketResponse, account: str) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            try:
                await self._send(ws, account, "heartbeat")
            except (aiohttp.ClientError, ConnectionError):
                await ws.close()
                return

    async def _apply(self, account: str, changes: list[Change]) -> None:
        mine = [c for c in changes if of_account(c, account)]
        kept, held = split_unpaired_fills(mine)
        if kept:
            journal = self._journal.setdefault(account, deque(maxlen=JOURNAL_SIZE))
            now = time.time()
            journal.append((now, kept))
            while journal and journal[0][0] < now - JOURNAL_SECONDS:
                journal.popleft()
            try:
                await self._state.update_cached(
                    account, lambda entry: apply_changes(entry, account, kept)
                )
            except CacheUnavailable:
                log.warning("account streamer: a change of %s not cached (Redis)", account)
        headers = self._credentials.get(account)
        if held and headers is not None:
            self._state.refresh_soon(account, headers)


@asynccontextmanager
async def running_streamer(
    state: StateSource, settings: Settings
) -> AsyncIterator[AccountStreamer | None]:
    """The account streamer while the proxy app runs (None when it is turned off): told of
    every credential the state source confirms, and applying its changes to the state."""
    url = streamer_url(settings)
    if url is None:
        yield None
        return
    streamer = AccountStreamer(state, url)
    await streamer.start()
    confirmed = state.on_confirmed

    def on_confirmed(account: str, client_headers: Mapping[str, str]) -> None:
        streamer.credential_seen(account, client_headers)
        if confirmed is not None:
            confirmed(account, client_headers)

    state.on_confirmed = on_confirmed
    state.on_snapshot = streamer.on_snapshot
    try:
        yield streamer
    finally:
        state.on_confirmed = confirmed
        state.on_snapshot = None
        await streamer.aclose()


def _same_credential(kept: Mapping[str, str] | None, headers: Mapping[str, str]) -> bool:
    """Whether ``kept`` carries the same Authorization as ``headers`` (constant time)."""
    if kept is None:
        return False
    first = kept.get("Authorization", "").encode()
    return hmac.compare_digest(first, headers.get("Authorization", "").encode())
