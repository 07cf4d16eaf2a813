"""A head that arrived in time is not cut off because the gatekeeper's own event loop was
busy (gatekeeper.web.connections): the head deadline measures the client, not the process.

asyncio's loop (the tests') handles the readable socket before the timers that fell due
while it was blocked, so after a block the head is parsed first and the head deadline fires
after it, before the handler has started. (uvloop runs due timers first: there the same
happens when the loop falls behind between reading a head and starting its handler.)
Without the guard's check the connection is closed then, and a bot that sent a whole order
in time gets no answer at all.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from gatekeeper.metrics import Metrics
from gatekeeper.web.connection_guard import ConnectionGuard, GuardedSite
from gatekeeper.web.connection_limits import ConnectionLimits
from gatekeeper.web.connections import connection_deadlines
from tests.security.capacity import read_until_closed, status_of

DEADLINE = 0.3


async def _echo_length(request: web.Request) -> web.Response:
    return web.json_response({"length": len(await request.read())})


@pytest.fixture
async def guarded() -> AsyncIterator[tuple[str, int, CollectorRegistry]]:
    app = web.Application(middlewares=[connection_deadlines])
    app.router.add_post("/orders", _echo_length)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    assert runner.server is not None
    registry = CollectorRegistry()
    limits = ConnectionLimits(
        head_timeout=DEADLINE, body_timeout=DEADLINE, max_total=10, max_per_address=10
    )
    guard = ConnectionGuard(runner.server, limits, Metrics.create(registry), "proxy")
    site = GuardedSite(runner, guard, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert isinstance(server, asyncio.base_events.Server)
    port = server.sockets[0].getsockname()[1]
    try:
        yield "127.0.0.1", port, registry
    finally:
        await runner.cleanup()


def _closes(registry: CollectorRegistry, reason: str) -> float:
    for metric in registry.collect():
        for sample in metric.samples:
            if "closed" in sample.name and sample.labels.get("reason") == reason:
                return sample.value
    return 0.0


async def _send_then_block(host: str, port: int, request: bytes, block: float) -> bytes:
    sock = socket.create_connection((host, port))
    try:
        await asyncio.sleep(0.05)  # accepted: the head deadline is running
        sock.sendall(request)
        time.sleep(block)  # the event loop is busy past the deadline  # noqa: ASYNC251
        reader, writer = await asyncio.open_connection(sock=sock)
    except BaseException:
        sock.close()
        raise
    try:
        return await asyncio.wait_for(read_until_closed(reader), 5.0)
    finally:
        writer.close()


async def test_a_head_that_came_in_time_is_answered_after_the_loop_was_busy(
    guarded: tuple[str, int, CollectorRegistry],
) -> None:
    host, port, registry = guarded
    body = b'{"order-type": "Market"}'
    request = (
        b"POST /orders HTTP/1.1\r\nHost: gate\r\nContent-Type: application/json\r\n"
        b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    answer = await _send_then_block(host, port, request, block=DEADLINE + 0.3)
    assert status_of(answer) == 200, answer[:200]
    assert b'"length": %d' % len(body) in answer
    assert _closes(registry, "head_timeout") == 0


async def test_a_head_that_did_not_come_is_still_cut_off(
    guarded: tuple[str, int, CollectorRegistry],
) -> None:
    """The same busy loop, but only half a head: the deadline still closes it."""
    host, port, registry = guarded
    answer = await _send_then_block(
        host, port, b"POST /orders HTTP/1.1\r\nHost: gate\r\n", block=DEADLINE + 0.3
    )
    assert status_of(answer) is None, answer[:200]
    assert _closes(registry, "head_timeout") == 1
