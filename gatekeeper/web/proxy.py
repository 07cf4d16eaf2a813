"""The proxy listener: forwards every request to the configured broker origin, byte for byte
(see gatekeeper.adapters.broker for what the broker gets), except the order routes, which go
through the order path (gatekeeper.orderpath). This module wires both onto the bots' app.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Mapping

import aiohttp
from aiohttp import web

from gatekeeper.adapters.account_state import StateSource
from gatekeeper.adapters.broker import (
    STREAM_CHUNK,
    BrokerClient,
    broker_session,
    end_to_end_headers,
)
from gatekeeper.adapters.day_start import DayStartSource
from gatekeeper.adapters.instruments import InstrumentSource
from gatekeeper.adapters.refusal_rows import RefusalRows
from gatekeeper.core import RouteKind, classify
from gatekeeper.errors import GatekeeperError, UpstreamDisconnected, error_response
from gatekeeper.metrics import Metrics
from gatekeeper.orderpath.engine import Engine
from gatekeeper.orderpath.handler import OrderPath
from gatekeeper.reconciler import Reconciler
from gatekeeper.settings import Settings
from gatekeeper.stop_actions import attach_stop_actions
from gatekeeper.web import keys
from gatekeeper.web.alerting import alert_worker
from gatekeeper.web.render import errors_middleware

log = logging.getLogger(__name__)


async def forward(request: web.Request, *, route_kind: str = "passthrough") -> web.StreamResponse:
    """Send ``request`` to the broker and stream the answer back. Raises UpstreamUnavailable
    (never sent), UpstreamTimeout or UpstreamDisconnected (may have been received) before any
    byte of the response is written; never retries."""
    upstream = await request.app[keys.PASSTHROUGH_BROKER].send(request, None, route_kind)
    async with upstream:
        return await _relay(request, upstream, route_kind)


def _whole_answer_fits(request: web.Request, upstream: aiohttp.ClientResponse) -> bool:
    """An answer with a body of known length up to one chunk (most of the broker's): read
    whole, then sent with its headers in one write, as a buffering proxy does."""
    length = upstream.content_length
    return (
        length is not None
        and 0 < length <= STREAM_CHUNK
        and request.method != "HEAD"
        and upstream.status >= 200
        and upstream.status not in (204, 304)
    )


async def _relay(
    request: web.Request, upstream: aiohttp.ClientResponse, route_kind: str
) -> web.StreamResponse:
    if _whole_answer_fits(request, upstream):
        try:
            body = await upstream.read()
        except (aiohttp.ClientError, TimeoutError) as error:
            # Nothing of the answer was relayed yet: the client gets a whole 502 instead.
            request.app[keys.METRICS].upstream_errors.labels("disconnected").inc()
            log.warning("broker answer cut short (%s): %s", route_kind, type(error).__name__)
            raise UpstreamDisconnected("The broker's answer was cut short.") from None
        headers = end_to_end_headers(upstream.headers)
        headers.popall("Content-Length", None)  # the Response writes the body's own
        return web.Response(
            status=upstream.status, reason=upstream.reason, headers=headers, body=body
        )
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
            response = await request.app[keys.ORDER_PATH].handle(request, route)
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
        counted = (route_kind, _method_label(request.method), status // 100)
        children = request.app[keys.REQUEST_METRICS]
        found = children.get(counted)
        if found is None:
            found = children[counted] = (
                metrics.proxy_requests.labels(counted[0], counted[1], f"{counted[2]}xx"),
                metrics.proxy_request_duration.labels(route_kind),
            )
        found[0].inc()
        found[1].observe(time.perf_counter() - started)


async def record_refusal(request: web.Request, error: GatekeeperError) -> web.StreamResponse | None:
    """A request on an order route, on a connection beyond the connection limits: refused
    without being read further, with its decision row (keys.RECORD_REFUSAL)."""
    route = classify(request.method, request.raw_path)
    if not (route.kind.is_checked or route.kind is RouteKind.UNSUPPORTED):
        return None
    return await request.app[keys.ORDER_PATH].refuse(route, error)


_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _method_label(method: str) -> str:
    return method if method in _KNOWN_METHODS else "OTHER"


async def upstream_session(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: the proxy app's two pooled ClientSessions to the broker, one for
    pass-through traffic and one for the order path alone, so that pass-through traffic
    (slow clients streaming their bodies included) cannot take the order path's
    connections."""
    settings = app[keys.SETTINGS]
    async with (
        broker_session(settings, settings.proxy.max_connections) as passthrough,
        broker_session(settings, settings.proxy.order_max_connections) as order_path,
    ):
        app[keys.UPSTREAM] = passthrough
        app[keys.ORDER_UPSTREAM] = order_path
        app[keys.PASSTHROUGH_BROKER] = BrokerClient(passthrough, settings, app[keys.METRICS])
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
    await engine.aclose()
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


async def order_path(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: the order path, on the engine, reconciler and alerts made above, and
    the writer of its refusals' rows (one more database connection: their own)."""
    settings = app[keys.SETTINGS]
    assert settings.database_url is not None  # noqa: S101 - open_backends refuses to start without
    refusals = RefusalRows(settings.database_url.get_secret_value())
    app[keys.ORDER_PATH] = OrderPath(
        engine=app[keys.ENGINE],
        broker=BrokerClient(app[keys.ORDER_UPSTREAM], settings, app[keys.METRICS]),
        pool=app[keys.PG_POOL],
        settings=settings,
        metrics=app[keys.METRICS],
        refusals=refusals,
        reconciler=app.get(keys.RECONCILER),
        alerts=app.get(keys.ALERTS),
    )
    try:
        yield
    finally:
        await refusals.aclose()


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
    app[keys.REQUEST_METRICS] = {}
    app[keys.RECORD_REFUSAL] = record_refusal
    app.cleanup_ctx.append(upstream_session)
    app.cleanup_ctx.append(order_engine)
    app.cleanup_ctx.append(order_reconciler)
    app.cleanup_ctx.append(alert_worker)
    app.cleanup_ctx.append(order_path)
    app.router.add_route("*", "/{tail:.*}", proxy_handler)
    return app
