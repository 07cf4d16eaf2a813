"""Reads from the broker with a bot's own credentials: the one GET shared by the account state
(:mod:`gatekeeper.adapters.account_payloads`) and the instrument look-ups
(:mod:`gatekeeper.adapters.instruments`), so both forward the same headers with the same
timeouts.

Only the headers in ``CLIENT_HEADERS`` go to the broker (never cookies or anything else the
bot sent), redirects are not followed (they could carry the Authorization elsewhere), and a
failure is described in words fit for a log line: an exception type or a status, never the
``repr()`` of a client error, which can hold the token. The broker's 401 or 403 is the bot's
own credentials refused (BrokerAuthFailed, relayed as such), not a broker failure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp
import orjson
from multidict import CIMultiDict
from yarl import URL

from gatekeeper.errors import BrokerAuthFailed
from gatekeeper.settings import Settings

# Forwarded to the broker with the state requests; everything else (cookies...) is not.
CLIENT_HEADERS = ("Authorization", "User-Agent", "Accept-Version")
AUTH_REFUSED = (401, 403)


class BrokerReadError(Exception):
    """A read that gave no data: ``what`` says why (safe to log), ``status`` the HTTP status
    when the broker answered."""

    def __init__(self, what: str, status: int | None = None) -> None:
        super().__init__(what)
        self.what = what
        self.status = status


def read_timeout(settings: Settings) -> aiohttp.ClientTimeout:
    """The reads' timeouts: the proxy's, but never longer than the oldest state an order may
    be decided on (a slower answer could not be used anyway)."""
    return aiohttp.ClientTimeout(
        total=min(settings.proxy.total_timeout_seconds, settings.risk.max_state_age_seconds),
        connect=settings.proxy.connect_timeout_seconds,
    )


def forwarded_headers(client_headers: Mapping[str, str]) -> CIMultiDict[str]:
    """The bot's headers that go to the broker with a read, and ``Accept``."""
    headers = CIMultiDict(
        (name, client_headers[name]) for name in CLIENT_HEADERS if name in client_headers
    )
    headers["Accept"] = "application/json"
    return headers


async def get_data(
    session: aiohttp.ClientSession,
    url: str | URL,
    client_headers: Mapping[str, str],
    client_timeout: aiohttp.ClientTimeout,
    *,
    label: str,
    query: list[tuple[str, str]] | None = None,
) -> Any:
    """``GET url`` with the bot's headers; the ``data`` of the broker's answer.

    ``url`` may be a ``yarl.URL`` built with ``encoded=True`` when the path must reach the
    broker byte for byte. ``label`` names the read in error messages. Raises BrokerAuthFailed
    on the broker's 401 or 403, BrokerReadError on any other status than 200 (with
    ``status``), a transport error, a timeout or an answer that is not the broker's JSON
    envelope.
    """
    try:
        async with session.get(
            url,
            params=query,
            headers=forwarded_headers(client_headers),
            timeout=client_timeout,
            allow_redirects=False,
        ) as response:
            if response.status in AUTH_REFUSED:
                raise BrokerAuthFailed.for_status(
                    response.status,
                    f"broker_auth_failed: the broker refused this request's credentials"
                    f" ({label} answered {response.status})",
                )
            if response.status != 200:
                raise BrokerReadError(f"{label} answered {response.status}", response.status)
            body = await response.read()
    except (aiohttp.ClientError, TimeoutError) as error:
        raise BrokerReadError(type(error).__name__) from None
    try:
        return orjson.loads(body)["data"]
    except (ValueError, KeyError, TypeError):
        raise BrokerReadError("unreadable answer") from None
