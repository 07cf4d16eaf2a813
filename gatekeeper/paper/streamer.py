"""TastyTrade's account streamer, served by the paper broker over a WebSocket at
``/account-streamer`` (the gatekeeper's default for an upstream that is not TastyTrade).

Wire format (``../shared/tastytrade-api.md`` §8): every client message is JSON with
``auth-token`` (``Bearer <access token>`` or a bare session token), ``action`` and
``request-id``; ``connect`` (value: the account numbers, or one) must come first, else the
ack is an error ``connect-not-completed``; ``heartbeat`` and the ``*-subscribe`` actions are
acknowledged. Acks: ``{"status": "ok"|"error", "action", "web-socket-session-id",
"request-id", "value"?, "message"?}``. Notifications: ``{"type", "data", "timestamp"}`` with
``AccountBalance``, ``CurrentPosition`` (quantity 0, direction ``Zero`` once closed) and
``Order``, in the REST payloads' shapes.

Changes are found by comparison: after every request the broker handles (orders placed,
filled, cancelled, replaced; quotes moved, which may fill working orders; cash set), and
every PUBLISH_SECONDS besides (a test may change the book directly; balances follow marks),
the subscribed accounts' orders, positions and balances are compared with what was last
published, and what differs is sent. Marks and ``updated-at`` alone do not count as changes.

Control routes (``X-Paper-Control-Token``): ``GET /__paper/streamer`` lists the connections
and their accounts; ``DELETE /__paper/streamer`` drops them all (a test of reconnection).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import json
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from gatekeeper.paper import order_payloads as op
from gatekeeper.paper import payloads as p
from gatekeeper.paper.book import PaperBook
from gatekeeper.paper.control import CONTROL_TOKEN, CONTROL_TOKEN_HEADER, ControlTokenInvalid
from gatekeeper.paper.errors import PaperError
from gatekeeper.paper.http import BOOK, NEW_YORK, Handler, ok

STREAMER_PATH = "/account-streamer"
PUBLISH_SECONDS = 0.1
QUEUE_SIZE = 10_000  # messages waiting for a slow client; beyond it the client is dropped
# Fields that move with every quote or every read: not a change on their own.
VOLATILE = frozenset({"updated-at", "snapshot-date", "mark", "mark-price"})

Snapshot = dict[str, dict[str, dict[str, Any]]]  # kind -> key -> payload


@dataclass(eq=False)
class Connection:
    ws: web.WebSocketResponse
    session_id: str
    accounts: set[str] = field(default_factory=set)
    outbox: asyncio.Queue[str] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    overflowed: bool = False

    def post(self, message: Mapping[str, Any]) -> None:
        if self.overflowed:
            return
        try:
            self.outbox.put_nowait(json.dumps(message))
        except asyncio.QueueFull:
            # A client this far behind has lost track: drop it (it connects again and
            # fetches the state anew), as a broker would.
            self.overflowed = True
            self.outbox.get_nowait()
            self.outbox.put_nowait("")

    async def write(self) -> None:
        while True:
            text = await self.outbox.get()
            if not text:
                await self.ws.close(code=WSCloseCode.TRY_AGAIN_LATER)
                return
            await self.ws.send_str(text)


class StreamerHub:
    """The open connections and what each account's subscribers were last told."""

    def __init__(self, book: PaperBook) -> None:
        self.book = book
        self.connections: set[Connection] = set()
        self.published: dict[str, Snapshot] = {}  # account -> last published
        self._ids = itertools.count(1)

    def new_session_id(self) -> str:
        return f"paper-{next(self._ids)}"

    def subscribe(self, connection: Connection, accounts: list[str]) -> None:
        for number in accounts:
            if number not in self.published:
                self.published[number] = self._snapshot(number)
        connection.accounts.update(accounts)

    def publish(self) -> None:
        """Send every subscribed account's changes since the last call."""
        watched = {n for c in self.connections for n in c.accounts}
        for number in list(self.published):
            if number not in watched:
                del self.published[number]
        for number in watched:
            messages = self._changes(number)
            if not messages:
                continue
            for connection in self.connections:
                if number in connection.accounts:
                    for message in messages:
                        connection.post(message)

    def _snapshot(self, number: str) -> Snapshot:
        book = self.book
        account = book.accounts[number]
        now = book.now()
        today = now.astimezone(NEW_YORK).date()
        return {
            "AccountBalance": {
                number: p.balances_payload(account, book.valuation(number), now),
            },
            "CurrentPosition": {
                symbol: p.position_payload(position, book.mark_of(position), today)
                for symbol, position in account.positions.items()
            },
            "Order": {str(order_id): op.order_payload(o) for order_id, o in account.orders.items()},
        }

    def _changes(self, number: str) -> list[dict[str, Any]]:
        before = self.published.get(number, {})
        after = self._snapshot(number)
        self.published[number] = after
        stamp = int(time.time() * 1000)
        messages: list[dict[str, Any]] = []
        for kind in ("Order", "CurrentPosition", "AccountBalance"):
            old, new = before.get(kind, {}), after[kind]
            for key, payload in new.items():
                if key not in old or _stable(old[key]) != _stable(payload):
                    messages.append({"type": kind, "data": payload, "timestamp": stamp})
            if kind == "CurrentPosition":
                for key in old.keys() - new.keys():
                    closed = {
                        **old[key],
                        "quantity": 0,
                        "quantity-direction": "Zero",
                        "updated-at": p.iso(self.book.now()),
                    }
                    messages.append({"type": kind, "data": closed, "timestamp": stamp})
        return messages


def _stable(payload: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if k not in VOLATILE}


HUB = web.AppKey("paper_streamer_hub", StreamerHub)


async def account_streamer(request: web.Request) -> web.WebSocketResponse:
    """One client's WebSocket: acks its actions; the hub sends its accounts' changes."""
    hub = request.app[HUB]
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    connection = Connection(ws, hub.new_session_id())
    hub.connections.add(connection)
    writer = asyncio.create_task(connection.write())
    try:
        async for frame in ws:
            if frame.type is WSMsgType.TEXT:
                _handle(hub, connection, frame.data)
    finally:
        hub.connections.discard(connection)
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await writer
    return ws


def _handle(hub: StreamerHub, connection: Connection, text: str) -> None:
    try:
        message = json.loads(text)
    except ValueError:
        message = None
    if not isinstance(message, Mapping):
        connection.post(_ack(connection, {}, "error", message="message must be a JSON object"))
        return
    action = message.get("action")
    try:
        user = hub.book.authenticate(message.get("auth-token"))
    except PaperError as error:
        connection.post(_ack(connection, message, "error", message=error.message))
        return
    if action == "connect":
        value = message.get("value")
        numbers = [value] if isinstance(value, str) else value
        if not isinstance(numbers, list) or not all(isinstance(n, str) for n in numbers):
            connection.post(_ack(connection, message, "error", message="value: account numbers"))
            return
        try:
            for number in numbers:
                hub.book.account_for(user, number)
        except PaperError as error:
            connection.post(_ack(connection, message, "error", message=error.message))
            return
        hub.subscribe(connection, numbers)
        connection.post(_ack(connection, message, "ok", value=sorted(connection.accounts)))
    elif not connection.accounts:
        connection.post(_ack(connection, message, "error", message="connect-not-completed"))
    elif action == "heartbeat" or str(action).endswith("-subscribe"):
        connection.post(_ack(connection, message, "ok"))
    else:
        connection.post(_ack(connection, message, "error", message=f"unknown action {action}"))


def _ack(
    connection: Connection, asked: Mapping[str, Any], status: str, **extra: Any
) -> dict[str, Any]:
    return {
        "status": status,
        "action": asked.get("action"),
        "web-socket-session-id": connection.session_id,
        "request-id": asked.get("request-id"),
        **extra,
    }


@web.middleware
async def publish_changes(request: web.Request, handler: Handler) -> web.StreamResponse:
    """After each request, the changes it made reach the subscribers (before its answer)."""
    try:
        return await handler(request)
    finally:
        if request.path != STREAMER_PATH:
            request.app[HUB].publish()


def _guarded(handler: Handler) -> Handler:
    async def guarded(request: web.Request) -> web.StreamResponse:
        presented = request.headers.get(CONTROL_TOKEN_HEADER, "").encode("utf-8", "replace")
        if not hmac.compare_digest(presented, request.app[CONTROL_TOKEN]):
            raise ControlTokenInvalid(
                f"The paper broker's control routes need the {CONTROL_TOKEN_HEADER} header"
            )
        return await handler(request)

    return guarded


async def list_connections(request: web.Request) -> web.Response:
    connections = sorted(request.app[HUB].connections, key=lambda c: c.session_id)
    items = [{"session-id": c.session_id, "accounts": sorted(c.accounts)} for c in connections]
    return ok(request, {"items": items})


async def drop_connections(request: web.Request) -> web.Response:
    await _close_all(request.app)
    return ok(request, {"items": []})


async def _close_all(app: web.Application) -> None:
    hub = app[HUB]
    connections = list(hub.connections)
    hub.connections.clear()
    await asyncio.gather(
        *(c.ws.close(code=WSCloseCode.GOING_AWAY) for c in connections), return_exceptions=True
    )


async def _publish_periodically(app: web.Application) -> AsyncIterator[None]:
    """Cleanup context: publish every PUBLISH_SECONDS while anyone is subscribed."""

    async def loop() -> None:
        hub = app[HUB]
        while True:
            await asyncio.sleep(PUBLISH_SECONDS)
            if hub.connections:
                hub.publish()

    task = asyncio.create_task(loop(), name="paper-streamer-publish")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def add_streamer_routes(app: web.Application) -> None:
    """The streamer's route, its control routes and the middleware that publishes changes
    (after the app's control routes: they need its control token)."""
    app[HUB] = StreamerHub(app[BOOK])
    app.middlewares.append(publish_changes)
    app.router.add_route("GET", STREAMER_PATH, account_streamer)
    app.router.add_route("GET", "/__paper/streamer", _guarded(list_connections))
    app.router.add_route("DELETE", "/__paper/streamer", _guarded(drop_connections))
    app.on_shutdown.append(_close_all)
    app.cleanup_ctx.append(_publish_periodically)
