"""The proxy listener: forwards every request to the configured broker origin.

Bodies are streamed both ways, byte for byte (never decompressed); hop-by-hop headers are
dropped and everything end-to-end (``Authorization``, ``Accept-Version``, ``User-Agent``…) is
preserved, except headers that name another URL or host (``X-Original-URL``…). A request whose
``Connection`` names a credential or a field the gatekeeper reads is refused. The upstream
origin comes from settings only; the request target is validated and forwarded as received.
Redirects are relayed to the client, never followed, so the proxy cannot be steered to
another host.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from gatekeeper.adapters.account_state import StateSource
from gatekeeper.adapters.day_start import DayStartSource
from gatekeeper.adapters.instruments import InstrumentSource
from gatekeeper.core import RouteKind, classify
from gatekeeper.engine import Engine
from gatekeeper.errors import (
    GatekeeperError,
    RequestTimeout,
    UpstreamDisconnected,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gatekeeper.gate import handle_order
from gatekeeper.metrics import Metrics
from gatekeeper.reconciler import Reconciler
from gatekeeper.settings import Settings
from gatekeeper.stop_actions import attach_stop_actions
from gatekeeper.web import keys
from gatekeeper.web.alerting import alert_worker
from gatekeeper.web.paths import validate_headers, validate_target
from gatekeeper.web.render import error_response, errors_middleware

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
    drop = HOP_BY_HOP | _connection_tokens(headers)
    return CIMultiDict((name, value) for name, value in headers.items() if name.lower() not in drop)


def upstream_request_headers(request: web.Request, settings: Settings) -> CIMultiDict[str]:
    """What the broker gets: end-to-end headers as sent, minus URL and host overrides.

    A request whose Connection header names a credential or a field the gatekeeper reads
    never gets here (gatekeeper.web.paths.validate_headers): none of those is dropped.
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


async def _send(
    request: web.Request, body: bytes | None, route_kind: str, session: aiohttp.ClientSession
) -> aiohttp.ClientResponse:
    """Send ``request`` upstream on ``session`` (``body`` replaces the streamed body); never
    retries.

    Raises UpstreamUnavailable (never sent: no connection, even a pooled one, within the
    connect timeout), UpstreamTimeout or UpstreamDisconnected (may have been received).
    """
    app = request.app
    settings = app[keys.SETTINGS]
    metrics = app[keys.METRICS]
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
        return await session.request(
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
        # too long), so nothing was sent. A read timeout after sending is SocketTimeoutError;
        # the total timeout cannot end the wait first (settings: total > connect + 1 s).
        metrics.upstream_errors.labels("connect_timeout").inc()
        raise UpstreamUnavailable("No connection to the broker was free in time.") from None
    except (TimeoutError, aiohttp.ServerTimeoutError):
        metrics.upstream_errors.labels("timeout").inc()
        raise UpstreamTimeout("The broker did not answer in time.") from None
    except aiohttp.ClientError as error:
        # Sent (maybe partly) but no answer: e.g. the broker closed the connection.
        metrics.upstream_errors.labels("disconnected").inc()
        log.warning("broker connection failed (%s): %s", route_kind, type(error).__name__)
        raise UpstreamDisconnected("The broker closed the connection without answering.") from None


async def forward(
    request: web.Request,
    *,
    body: bytes | None = None,
    route_kind: str = "passthrough",
) -> web.StreamResponse:
    """Send ``request`` to the broker and stream the answer back.

    ``body`` replaces the streamed request body (the order path forwards the exact bytes it
    checked). Raises UpstreamUnavailable (never sent), UpstreamTimeout or UpstreamDisconnected
    (may have been received) before any byte of the response is written; never retries.
    """
    upstream = await _send(request, body, route_kind, request.app[keys.UPSTREAM])
    async with upstream:
        return await _relay(request, upstream, route_kind)


@dataclass(frozen=True)
class UpstreamAnswer:
    """The broker's complete answer to an order request, read so it can be recorded."""

    status: int
    reason: str | None
    headers: CIMultiDict[str]
    body: bytes

    def response(self) -> web.Response:
        """The answer as the client gets it: same status, end-to-end headers and bytes."""
        headers = CIMultiDict(self.headers)
        headers.popall("Content-Length", None)
        return web.Response(status=self.status, reason=self.reason, headers=headers, body=self.body)


async def forward_buffered(
    request: web.Request, *, body: bytes, route_kind: str, max_bytes: int = MAX_ORDER_ANSWER
) -> UpstreamAnswer:
    """Like :func:`forward`, but read the whole (small) answer so the order path can record
    it before relaying it byte for byte. An answer cut short raises UpstreamTimeout: the
    broker may have placed the order."""
    upstream = await _send(request, body, route_kind, request.app[keys.ORDER_UPSTREAM])
    async with upstream:
        data = b""
        try:
            async for chunk in upstream.content.iter_chunked(STREAM_CHUNK):
                data += chunk
                if len(data) > max_bytes:
                    break
        except (aiohttp.ClientError, TimeoutError) as error:
            request.app[keys.METRICS].upstream_errors.labels("disconnected").inc()
            log.warning("broker answer interrupted (%s): %s", route_kind, type(error).__name__)
            raise UpstreamTimeout("The broker's answer was cut short.") from None
        if len(data) > max_bytes:
            raise UpstreamTimeout("The broker's answer to an order was unexpectedly large.")
        return UpstreamAnswer(
            upstream.status, upstream.reason, end_to_end_headers(upstream.headers), data
        )


async def _relay(
    request: web.Request, upstream: aiohttp.ClientResponse, route_kind: str
) -> web.StreamResponse:
    response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
    response.headers.extend(end_to_end_headers(upstream.headers))
    if upstream.content_length is not None:
        response.content_length = upstream.content_length
    await response.prepare(request)
    try:
        async for chunk in upstream.content.iter_chunked(STREAM_CHUNK):
            await response.write(chunk)
    except (aiohttp.ClientError, TimeoutError) as error:
        # Headers are gone already; all we can do is cut the response short.
        request.app[keys.METRICS].upstream_errors.labels("disconnected").inc()
        log.warning("broker response interrupted (%s): %s", route_kind, type(error).__name__)
        if request.transport is not None:
            request.transport.close()
        return response
    await response.write_eof()
    return response


async def proxy_handler(request: web.Request) -> web.StreamResponse:
    """Catch-all route of the proxy listener: checked order routes go through the gate,
    unsupported order routes are refused, everything else (cancels too) is forwarded."""
    metrics = request.app[keys.METRICS]
    started = time.perf_counter()
    route = classify(request.method, request.raw_path)
    route_kind = "passthrough" if route.kind is RouteKind.PASS_THROUGH else route.kind.value
    status = 500
    try:
        response: web.StreamResponse
        if route.kind.is_checked or route.kind is RouteKind.UNSUPPORTED:
            # validates the request itself, so that its refusals get a decision row too
            response = await handle_order(request, route, forward_buffered)
        else:
            response = await forward(request, route_kind=route_kind)
        status = response.status
        return response
    except GatekeeperError as error:
        status = error.status
        if error.status < 500:
            metrics.refused_requests.labels(error.code).inc()
        return error_response(error)
    finally:
        metrics.proxy_requests.labels(
            route_kind, _method_label(request.method), f"{status // 100}xx"
        ).inc()
        metrics.proxy_request_duration.labels(route_kind).observe(time.perf_counter() - started)


_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _method_label(method: str) -> str:
    return method if method in _KNOWN_METHODS else "OTHER"


def _client_timeout(settings: Settings) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(
        total=settings.proxy.total_timeout_seconds,
        connect=settings.proxy.connect_timeout_seconds,
        sock_read=settings.proxy.read_timeout_seconds,
    )


def _broker_session(settings: Settings, max_connections: int) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(
        limit=max_connections, ttl_dns_cache=300, enable_cleanup_closed=True
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=_client_timeout(settings),
        auto_decompress=False,
        trust_env=False,  # never route via HTTP(S)_PROXY from the environment
        skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
        cookie_jar=aiohttp.DummyCookieJar(),
    )


async def upstream_session(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: the proxy app's two pooled ClientSessions to the broker, one for
    pass-through traffic and one for the order path alone, so that pass-through traffic
    (slow clients streaming their bodies included) cannot take the order path's
    connections."""
    settings = app[keys.SETTINGS]
    async with (
        _broker_session(settings, settings.proxy.max_connections) as passthrough,
        _broker_session(settings, settings.proxy.order_max_connections) as order_path,
    ):
        app[keys.UPSTREAM] = passthrough
        app[keys.ORDER_UPSTREAM] = order_path
        yield
    # Give the connector's SSL transports a moment to close cleanly.
    await asyncio.sleep(0)


async def order_engine(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: the risk engine, on the backends ``server.running`` put on the app
    and the order path's own broker session."""
    session, redis, settings = app[keys.ORDER_UPSTREAM], app[keys.REDIS], app[keys.SETTINGS]
    state = StateSource(session, redis, settings, app[keys.METRICS])
    instruments = InstrumentSource(session, redis, settings, app[keys.METRICS])
    pool = app[keys.PG_POOL]
    day_start = DayStartSource(session, redis, pool, settings, app[keys.METRICS])
    engine = app[keys.ENGINE] = Engine(pool, state, settings, instruments, day_start)
    actions = app[keys.STOP_ACTIONS] = attach_stop_actions(engine, session)
    yield
    await actions.aclose()
    await state.aclose()


async def order_reconciler(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: this replica's reconciler (gatekeeper.reconciler), told of every
    credential the broker confirms for an account."""
    engine = app[keys.ENGINE]
    reconciler = app[keys.RECONCILER] = Reconciler(
        app[keys.PG_POOL], app[keys.ORDER_UPSTREAM], app[keys.SETTINGS]
    )
    confirmed = engine.state.on_confirmed

    def on_confirmed(account: str, client_headers: Mapping[str, str]) -> None:
        reconciler.credential_seen(account, client_headers)
        if confirmed is not None:
            confirmed(account, client_headers)

    engine.state.on_confirmed = on_confirmed
    task = asyncio.create_task(reconciler.run(), name="gatekeeper-reconciler")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def create_proxy_app(settings: Settings, metrics: Metrics) -> web.Application:
    """The bots' listener. Order routes join it with the risk engine."""
    # auto_decompress=False: bodies reach the broker and the order path exactly as received;
    # aiohttp's server would otherwise gunzip them while the header still says gzip.
    app = web.Application(
        middlewares=[errors_middleware],
        client_max_size=1024**2,
        handler_args={"auto_decompress": False},
    )
    app[keys.SETTINGS] = settings
    app[keys.METRICS] = metrics
    app.cleanup_ctx.append(upstream_session)
    app.cleanup_ctx.append(order_engine)
    app.cleanup_ctx.append(order_reconciler)
    app.cleanup_ctx.append(alert_worker)
    app.router.add_route("*", "/{tail:.*}", proxy_handler)
    return app
