"""Background refreshes of accounts' state (gatekeeper.adapters.account_state): after a
forward, or asked by the account streamer. One per account at a time, after any refresh
already running for it (which may have been asked before the change that prompts this one);
at most one more queued, with the latest credential; at most MAX_BACKGROUND_REFRESHES
accounts at once. After a forward a refresh waits until ``refresh_after_forward_seconds``
have passed since the account's last one, so a burst of forwards shares one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping

from gatekeeper.adapters.broker_read import CLIENT_HEADERS
from gatekeeper.settings import RiskSettings

log = logging.getLogger(__name__)

# Accounts whose last background refresh is remembered per process: beyond it, start over.
MAX_REMEMBERED = 1024
# Background refreshes (after a forward, or asked by the streamer) running at once; beyond
# it none is started: the state then ages as usual and the next order refreshes it.
MAX_BACKGROUND_REFRESHES = 256

Refresh = Callable[[str, dict[str, str]], Awaitable[None]]


class BackgroundRefreshes:
    """When each account's state is refreshed in the background; ``refresh(account,
    headers)`` does it (and logs its own failures)."""

    def __init__(self, risk: RiskSettings, refresh: Refresh) -> None:
        self._risk = risk
        self._refresh = refresh
        self._background: dict[str, asyncio.Task[None]] = {}  # by account
        self._background_at: dict[str, float] = {}  # account -> its last one's start
        # account -> credential of one more, and whether only forwards asked for it
        self._again: dict[str, tuple[dict[str, str], bool]] = {}
        self._sleeping: dict[str, dict[str, str]] = {}  # account -> credential it will use
        self._closing = False

    def soon(
        self, account: str, client_headers: Mapping[str, str], *, after_forward: bool = False
    ) -> None:
        """Refresh the account's state with ``client_headers`` in the background (see the
        module docstring). Failures are logged by type only. Never raises, never blocks."""
        try:
            if self._closing or not client_headers.get("Authorization"):
                return  # nothing to fetch with: the next order fetches with its own
            # Only what the reads send (never cookies), looked up case-insensitively.
            headers = {n: v for n in CLIENT_HEADERS if (v := client_headers.get(n)) is not None}
            if account in self._sleeping:  # not begun: it will show this change, with these
                self._sleeping[account] = headers
                return
            if account in self._background:
                queued = self._again.get(account)
                self._again[account] = (headers, after_forward and (queued is None or queued[1]))
                return
            if len(self._background) >= MAX_BACKGROUND_REFRESHES:
                log.warning("background account state refreshes at their limit; skipped one")
                return
            wait = 0.0
            if after_forward:
                since = time.monotonic() - self._background_at.get(account, -1e9)
                wait = max(0.0, self._risk.refresh_after_forward_seconds - since)
            task = asyncio.create_task(self._run(account, headers, wait))
            self._background[account] = task
            task.add_done_callback(lambda _: self._done(account, task))
        except Exception as error:  # on the order path: never let it fail a request
            log.error("could not schedule an account state refresh: %s", type(error).__name__)

    def running(self) -> int:
        """How many accounts have a background refresh running or waiting to begin."""
        return len(self._background)

    def close(self) -> list[asyncio.Task[None]]:
        """No more refreshes; the running ones (for the caller to cancel and await)."""
        self._closing = True
        return list(self._background.values())

    async def _run(self, account: str, headers: dict[str, str], wait: float = 0.0) -> None:
        if wait > 0:
            self._sleeping[account] = headers
            try:
                await asyncio.sleep(wait)  # forwards meanwhile share this refresh
            finally:
                headers = self._sleeping.pop(account, headers)
        if len(self._background_at) >= MAX_REMEMBERED and account not in self._background_at:
            self._background_at.clear()
        self._background_at[account] = time.monotonic()
        await self._refresh(account, headers)

    def _done(self, account: str, task: asyncio.Task[None]) -> None:
        if self._background.get(account) is task:
            del self._background[account]
        if not task.cancelled() and (error := task.exception()) is not None:
            log.error("background account state refresh failed: %s", type(error).__name__)
        again = self._again.pop(account, None)
        if again is not None and not self._closing:
            self.soon(account, again[0], after_forward=again[1])
