"""TastyTrade's account streamer as the broker serves it: where it is, how long each of its
waits may last, and how what it sends is read (the wire side of
:mod:`gatekeeper.adapters.account_streamer`, which keeps one connection per account and
applies the changes read).

Protocol (docs: ``../shared/tastytrade-api.md`` §8): every message carries ``auth-token``
(the bot's ``Authorization`` value), ``action`` and ``request-id``; ``connect`` with the
account numbers first, then a ``heartbeat`` every HEARTBEAT_SECONDS; the broker acks each
(``status`` ok or error) and sends ``{"type", "data"}`` notifications, sometimes batched in
``{"results": [...]}``. An error ack to ``connect`` or to a heartbeat, or a 401/403 to the
WebSocket handshake, is the credentials refused (StreamRefused). A connection silent for
SILENCE_SECONDS (not even a heartbeat's ack) is taken for dead. Notifications arriving
together (each within SETTLE_SECONDS of the last, SETTLE_MAX_SECONDS at most) are read as
one batch: a fill's order, position and balance come together. The messages are sent by the
streamer, with the latest credentials seen for the account.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from gatekeeper.adapters.account_changes import Change, changes_of, messages_of
from gatekeeper.settings import PRODUCTION_URL, SANDBOX_URL, Settings

# TastyTrade's streamer hosts for its API hosts (tastyware's CERT_STREAMER_URL, STREAMER_URL).
STREAMER_URLS = {
    SANDBOX_URL: "wss://streamer.cert.tastyworks.com",
    PRODUCTION_URL: "wss://streamer.tastyworks.com",
}
PAPER_STREAMER_PATH = "/account-streamer"
HEARTBEAT_SECONDS = 10.0
# No message (a heartbeat's ack at least) for this long: the connection is taken for dead.
SILENCE_SECONDS = 3 * HEARTBEAT_SECONDS
ACK_SECONDS = 10.0
SETTLE_SECONDS = 0.05
SETTLE_MAX_SECONDS = 0.25


class StreamRefused(Exception):
    """The broker refused the credentials (an error ack to ``connect``, or 401/403)."""


def streamer_url(settings: Settings) -> str | None:
    """The account streamer's URL, or None when it is turned off."""
    proxy = settings.proxy
    if not proxy.account_streamer:
        return None
    if proxy.account_streamer_url:
        return proxy.account_streamer_url
    known = STREAMER_URLS.get(proxy.upstream_url)
    if known is not None:
        return known
    parts = urlsplit(proxy.upstream_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return f"{scheme}://{parts.netloc}{PAPER_STREAMER_PATH}"


async def await_connected(ws: aiohttp.ClientWebSocketResponse) -> list[Change]:
    """Wait for the ``connect`` ack; notifications that came first are returned."""
    early: list[Change] = []
    deadline = time.monotonic() + ACK_SECONDS
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        messages = await receive(ws, remaining)
        if messages is None:
            raise aiohttp.ClientConnectionError("closed before connect was acknowledged")
        for message in messages:
            if message.get("action") == "connect":
                if message.get("status") != "ok":
                    raise StreamRefused
                return early
            early.extend(changes_of([message]))


async def next_batch(ws: aiohttp.ClientWebSocketResponse) -> list[Change] | None:
    """The next notifications, with those following within SETTLE_SECONDS (a fill's
    order, position and balance come together); None when the connection closed."""
    changes: list[Change] = []
    while not changes:
        messages = await receive(ws, SILENCE_SECONDS)
        if messages is None:
            return None
        check_acks(messages)
        changes.extend(changes_of(messages))
    deadline = time.monotonic() + SETTLE_MAX_SECONDS
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            messages = await receive(ws, min(SETTLE_SECONDS, remaining))
        except TimeoutError:
            break
        if messages is None:
            break
        check_acks(messages)
        changes.extend(changes_of(messages))
    return changes


def check_acks(messages: list[Mapping[str, Any]]) -> None:
    """Raises StreamRefused on a heartbeat's error ack."""
    for message in messages:
        if message.get("status") == "error" and message.get("action") == "heartbeat":
            raise StreamRefused  # the credential is no longer accepted


async def receive(
    ws: aiohttp.ClientWebSocketResponse, within: float
) -> list[Mapping[str, Any]] | None:
    """The messages of the next text frame (TimeoutError after ``within`` seconds);
    None when the connection closed."""
    while True:
        frame = await ws.receive(timeout=within)
        if frame.type in (
            aiohttp.WSMsgType.CLOSE,
            aiohttp.WSMsgType.CLOSING,
            aiohttp.WSMsgType.CLOSED,
            aiohttp.WSMsgType.ERROR,
        ):
            return None
        if frame.type is aiohttp.WSMsgType.TEXT:
            return messages_of(json.loads(frame.data))
