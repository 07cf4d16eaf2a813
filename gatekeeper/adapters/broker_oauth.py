"""The gatekeeper's own TastyTrade credentials (``[stops] broker_clients``): an access token
from ``POST /oauth/token`` (refresh_token grant, JSON body, no Authorization header; the
answer is bare OAuth JSON, ``access_token`` and ``expires_in``), kept in memory until shortly
before it expires. Tokens, refresh tokens and client secrets are never logged or stored.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import aiohttp

from gatekeeper import __version__
from gatekeeper.settings import BrokerClientSettings, Settings

log = logging.getLogger(__name__)

# Refresh this long before the broker says the token expires (tastyware: 60 s).
EXPIRY_MARGIN_SECONDS = 60.0
USER_AGENT = f"gatekeeper/{__version__}"


class BrokerClients:
    """Access tokens of the configured broker clients, by account."""

    def __init__(self, session: aiohttp.ClientSession, settings: Settings) -> None:
        self._session = session
        self._upstream = settings.proxy.upstream_url
        self._timeout = aiohttp.ClientTimeout(
            total=settings.proxy.total_timeout_seconds,
            connect=settings.proxy.connect_timeout_seconds,
        )
        self._by_account = {
            account: client
            for client in settings.stops.broker_clients
            for account in client.accounts
        }
        self._tokens: dict[int, tuple[str, float]] = {}  # id(client) -> (token, valid until)
        self._lock = asyncio.Lock()

    def accounts(self) -> tuple[str, ...]:
        """The accounts some configured client may act on."""
        return tuple(self._by_account)

    def configured(self, account: str) -> bool:
        return account in self._by_account

    async def headers(self, account: str) -> dict[str, str] | None:
        """``Authorization`` (and a User-Agent) for ``account``, or None when no client is
        configured for it or the broker refused to issue a token (logged, without secrets)."""
        client = self._by_account.get(account)
        if client is None:
            return None
        async with self._lock:  # one refresh at a time: the broker may rotate tokens
            token = self._tokens.get(id(client))
            if token is None or token[1] <= time.monotonic():
                fetched = await self._refresh(client)
                if fetched is None:
                    return None
                token = fetched
                self._tokens[id(client)] = token
        return {"Authorization": f"Bearer {token[0]}", "User-Agent": USER_AGENT}

    async def _refresh(self, client: BrokerClientSettings) -> tuple[str, float] | None:
        body: dict[str, Any] = {
            "grant_type": "refresh_token",
            "refresh_token": client.refresh_token.get_secret_value(),
            "client_secret": client.client_secret.get_secret_value(),
        }
        if client.client_id:
            body["client_id"] = client.client_id
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        try:
            async with self._session.post(
                self._upstream + "/oauth/token",
                json=body,
                headers=headers,
                timeout=self._timeout,
                allow_redirects=False,
            ) as response:
                if response.status != 200:
                    log.warning("broker OAuth token refresh answered %s", response.status)
                    return None
                answer = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            log.warning("broker OAuth token refresh failed: %s", type(error).__name__)
            return None
        token = answer.get("access_token") if isinstance(answer, dict) else None
        if not isinstance(token, str) or not token:
            log.warning("broker OAuth token refresh: no access_token in the answer")
            return None
        expires = answer.get("expires_in")
        lifetime = float(expires) if isinstance(expires, int | float) else 900.0
        return token, time.monotonic() + max(0.0, lifetime - EXPIRY_MARGIN_SECONDS)
