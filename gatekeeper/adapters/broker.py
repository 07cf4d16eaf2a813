"""The broker client the proxy forwards with: one pooled aiohttp session per purpose (the
pass-through traffic's and the order path's own), the request headers the broker gets, and
the errors that tell "never sent" from "maybe received".

Bodies are sent as received (never decompressed); hop-by-hop headers are dropped and
everything end-to-end (``Authorization``, ``Accept-Version``, ``User-Agent``…) is preserved,
except headers that name another URL or host (``X-Original-URL``…). The origin comes from
settings only; the request target is validated and forwarded as received. Redirects are
relayed, never followed. Nothing here retries.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from gatekeeper.errors import (
    RequestTimeout,
    UpstreamDisconnected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gatekeeper.metrics import Metrics
from gatekeeper.request_paths import validate_headers, validate_target
from gatekeeper.settings import Settings

log = logging.getLogger(__name__)

# RFC 9110 §7.6.1 connection-specific fields, plus those that describe the hop's framing.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        # Answered by our own server to the client; the upstream gets the body directly.
        "expect",
        # Nothing may turn a request into another method behind the classifier's back.
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
    }
)
# Never forwarded: headers some servers and frameworks read as the "real" URL or host.
NOT_FORWARDED = frozenset(
    {
        "x-original-url",
        "x-rewrite-url",
        "x-forwarded-host",
        "x-forwarded-server",
        "x-forwarded-prefix",
        "x-host",
        "x-http-host-override",
        "forwarded",
    }
)
STREAM_CHUNK = 64 * 1024
MAX_ORDER_ANSWER = 1024**2


def _connection_tokens(headers: CIMultiDictProxy[str]) -> set[str]:
    tokens: set[str] = set()
    for value in headers.getall("Connection", []):
        tokens.update(token.strip().lower() for token in value.split(",") if token.strip())
    return tokens


def end_to_end_headers(headers: CIMultiDictProxy[str]) -> CIMultiDict[str]:
    """Copy ``headers`` without hop-by-hop fields (including those named in Connection)."""
    drop = HOP_BY_HOP | _connection_tokens(headers) if "Connection" in headers else HOP_BY_HOP
    copied = CIMultiDict(headers)  # a copy, then removals (case-insensitive): in C, not a loop
    for name in drop:
        copied.popall(name, None)
    return copied


def upstream_request_headers(request: web.Request, settings: Settings) -> CIMultiDict[str]:
    """What the broker gets: end-to-end headers as sent, minus URL and host overrides.

    A request whose Connection header names a credential or a field the gatekeeper reads
    never gets here (gatekeeper.request_paths.validate_headers): none of those is dropped.
    """
    headers = end_to_end_headers(request.headers)
    for name in NOT_FORWARDED:
        headers.popall(name, None)
    # Content-Length is kept when present so the body streams with the same framing.
    peer = request.remote or "unknown"
    previous = ", ".join(headers.getall("X-Forwarded-For", []))
    headers.popall("X-Forwarded-For", None)
    headers["X-Forwarded-For"] = f"{previous}, {peer}" if previous else peer
    if settings.proxy.user_agent_override:
        headers["User-Agent"] = settings.proxy.user_agent_override
    return headers


def upstream_url(settings: Settings, path: str, query: str) -> URL:
    """The configured origin joined with an already-validated, still-encoded path and query."""
    target = path + (f"?{query}" if query else "")
    return URL(settings.proxy.upstream_url + target, encoded=True)


async def _body_stream(request: web.Request) -> AsyncIterator[bytes]:
    async for chunk in request.content.iter_chunked(STREAM_CHUNK):
        yield chunk


@dataclass(frozen=True)
class UpstreamAnswer:
    """The broker's complete answer to an order request, read so it can be recorded."""

    status: int
    reason: str | None
    headers: CIMultiDict[str]
    body: bytes

    @cached_property
    def data(self) -> Mapping[str, Any] | None:
        """The answer's ``data`` object, parsed once for all who read it (the outcome row's
        broker order id, the cached state's answered order); None when there is none."""
        try:
            data = orjson.loads(self.body)["data"]
        except (ValueError, KeyError, TypeError):
            return None
        return data if isinstance(data, Mapping) else None

    def response(self) -> web.Response:
        """The answer as the client gets it: same status, end-to-end headers and bytes."""
        headers = CIMultiDict(self.headers)
        headers.popall("Content-Length", None)
        return web.Response(status=self.status, reason=self.reason, headers=headers, body=self.body)


class BrokerClient:
    """Sends requests to the broker on one pooled session (see the module docstring)."""

    def __init__(self, session: aiohttp.ClientSession, settings: Settings, metrics: Metrics):
        self.session = session
        self.settings = settings
        self.metrics = metrics

    async def send(
        self, request: web.Request, body: bytes | None, route_kind: str
    ) -> aiohttp.ClientResponse:
        """Send ``request`` upstream (``body`` replaces the streamed body); never retries.

        Raises UpstreamUnavailable (never sent: no connection, even a pooled one, within the
        connect timeout), UpstreamTimeout or UpstreamDisconnected (may have been received).
        """
        settings, metrics = self.settings, self.metrics
        path, query = validate_target(request.raw_path, method=request.method)
        validate_headers(request.headers)
        headers = upstream_request_headers(request, settings)
        data: bytes | AsyncIterator[bytes] | None
        if body is not None:
            data = body
            headers["Content-Length"] = str(len(body))
        elif request.body_exists:
            data = _body_stream(request)
        else:
            data = None
        try:
            return await self.session.request(
                request.method,
                upstream_url(settings, path, query),
                headers=headers,
                data=data,
                allow_redirects=False,
                auto_decompress=False,
            )
        except RequestTimeout:
            raise  # the client's body was too slow (connections.py), not the broker
        except aiohttp.ClientConnectorError:
            metrics.upstream_errors.labels("unavailable").inc()
            raise UpstreamUnavailable("The broker could not be reached.") from None
        except aiohttp.ConnectionTimeoutError:
            # Raised only before a connection was had (no free pooled one, or connecting took
            # too long), so nothing was sent. A read timeout after sending is
            # SocketTimeoutError; the total timeout cannot end the wait first (settings:
            # total > connect + 1 s).
            metrics.upstream_errors.labels("connect_timeout").inc()
            raise UpstreamUnavailable("No connection to the broker was free in time.") from None
        except (TimeoutError, aiohttp.ServerTimeoutError):
            metrics.upstream_errors.labels("timeout").inc()
            raise UpstreamTimeout("The broker did not answer in time.") from None
        except aiohttp.ClientError as error:
            # Sent (maybe partly) but no answer: e.g. the broker closed the connection.
            metrics.upstream_errors.labels("disconnected").inc()
            log.warning("broker connection failed (%s): %s", route_kind, type(error).__name__)
            raise UpstreamDisconnected(
                "The broker closed the connection without answering."
            ) from None

    async def send_buffered(
        self,
        request: web.Request,
        *,
        body: bytes,
        route_kind: str,
        max_bytes: int = MAX_ORDER_ANSWER,
    ) -> UpstreamAnswer:
        """Send and read the whole (small) answer, so the order path can record it before
        relaying it byte for byte. An answer cut short raises UpstreamTimeout: the broker may
        have placed the order."""
        upstream = await self.send(request, body, route_kind)
        async with upstream:
            data = b""
            try:
                async for chunk in upstream.content.iter_chunked(STREAM_CHUNK):
                    data += chunk
                    if len(data) > max_bytes:
                        break
            except (aiohttp.ClientError, TimeoutError) as error:
                self.metrics.upstream_errors.labels("disconnected").inc()
                log.warning("broker answer interrupted (%s): %s", route_kind, type(error).__name__)
                raise UpstreamTimeout("The broker's answer was cut short.") from None
            if len(data) > max_bytes:
                raise UpstreamTimeout("The broker's answer to an order was unexpectedly large.")
            return UpstreamAnswer(
                upstream.status, upstream.reason, end_to_end_headers(upstream.headers), data
            )


def client_timeout(settings: Settings) -> aiohttp.ClientTimeout:
    """The broker client's connect, read and total timeouts."""
    return aiohttp.ClientTimeout(
        total=settings.proxy.total_timeout_seconds,
        connect=settings.proxy.connect_timeout_seconds,
        sock_read=settings.proxy.read_timeout_seconds,
    )


def broker_session(settings: Settings, max_connections: int) -> aiohttp.ClientSession:
    """A pooled session to the broker: no decompression, no proxy from the environment, no
    cookies, no headers of its own."""
    connector = aiohttp.TCPConnector(
        limit=max_connections, ttl_dns_cache=300, enable_cleanup_closed=True
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=client_timeout(settings),
        auto_decompress=False,
        trust_env=False,  # never route via HTTP(S)_PROXY from the environment
        skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
        cookie_jar=aiohttp.DummyCookieJar(),
    )
