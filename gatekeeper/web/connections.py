"""Client connections of both listeners: the deadlines and limits aiohttp's server lacks.

aiohttp closes an idle keep-alive connection (``keepalive_timeout``), but nothing bounds a
request that arrives slowly: a client trickling its head, or its body (which pass-through
streams to the broker on a pooled connection), holds the connection as long as it likes. So
each connection's protocol (the one aiohttp makes, unchanged) is wrapped by a
:class:`GuardedConnection` (its listener's
:class:`~gatekeeper.web.connection_guard.ConnectionGuard` makes it), which sees the
connection open, every byte arrive and, through :func:`connection_deadlines` (the outermost
middleware), each request start and finish:

- a request's head must be complete within ``request_head_timeout_seconds`` of the
  connection's opening or of the request's first byte, else the connection is closed (a head
  that came in time but waits for a busy event loop to start its handler is not cut off);
- its body within ``request_body_timeout_seconds`` of the head: the handler's read then fails
  with RequestTimeout (408, the connection closed after the answer), and the connection is
  closed outright shortly after if the handler is still busy;
- beyond ``max_client_connections`` open connections, or ``max_client_connections_per_address``
  from one address (:mod:`gatekeeper.web.connection_guard` counts them), a new connection
  serves one request, answered 503 without running its handler, and is closed
  (:mod:`gatekeeper.web.connection_limits`: the limits and that answer).
"""

from __future__ import annotations

import asyncio
import enum
import logging
from http import HTTPStatus
from typing import TYPE_CHECKING, cast

from aiohttp import web

from gatekeeper.errors import RequestTimeout
from gatekeeper.web.connection_limits import REFUSAL_LINGER_SECONDS, refusal_answer, refusal_error
from gatekeeper.web.render import Handler

if TYPE_CHECKING:
    from gatekeeper.web.connection_guard import ConnectionGuard

log = logging.getLogger(__name__)

# After a body timeout, the handler has this long to answer 408 before the connection closes.
BODY_TIMEOUT_GRACE_SECONDS = 1.0
# A close this close to a deadline, by another timer of the same length, is the deadline's.
_SAME_DEADLINE_SECONDS = 0.05


class QuietErrorHandler(web.RequestHandler):
    """aiohttp's protocol, answering a request it cannot parse with its status line alone.

    aiohttp's own answer quotes the offending bytes (``Invalid HTTP header: b'Authorization :
    Bearer …'``): a credential sent back in an error body, and to whatever sits between the
    bot and us. Nothing else changes (no new slots: instances switch to it in place)."""

    __slots__ = ()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status != HTTPStatus.INTERNAL_SERVER_ERROR:
            phrase = HTTPStatus(status).phrase if status in _STATUSES else "Error"
            message = f"{status} {phrase}"
        return super().handle_error(request, status, exc, message)


_STATUSES = frozenset(int(s) for s in HTTPStatus)


class _Awaiting(enum.Enum):
    NOTHING = "nothing"  # idle between requests, or the request's body is complete
    HEAD = "head"
    BODY = "body"


class GuardedConnection(asyncio.Protocol):
    """One client connection: aiohttp's protocol for it, behind deadlines and limits."""

    def __init__(self, guard: ConnectionGuard) -> None:
        self._guard = guard
        self._transport: asyncio.Transport | None = None
        self._inner: web.RequestHandler | None = None  # None: closed unanswered
        # Why the connection was refused (the code of its 503); None: admitted.
        self.refusal: str | None = None
        self._address = ""
        self._timer: asyncio.TimerHandle | None = None
        self._awaiting = _Awaiting.NOTHING
        self._handling: web.BaseRequest | None = None
        self._body_timed_out = False
        self._next_began = False

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # a TCP listener's
        self._transport = transport
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) else str(peer)
        reason = self._guard.admit(address)
        if reason is not None:
            self._refuse(transport, reason)
            return
        self._address = address
        self._serve(transport)
        self._expect(_Awaiting.HEAD)

    def _serve(self, transport: asyncio.Transport) -> None:
        self._inner = self._guard.server()
        # Same object, one method changed (aiohttp's handler has __slots__ and no hook).
        self._inner.__class__ = QuietErrorHandler
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._inner is None:
            return  # closing unanswered
        if data and self.refusal is None and self._awaiting is _Awaiting.NOTHING:
            if self._handling is None:
                self._expect(_Awaiting.HEAD)
            else:
                # The next request began while this one is answered (pipelining).
                self._next_began = True
        self._inner.data_received(data)

    def eof_received(self) -> None:
        # Returning None lets the transport close itself, as aiohttp's protocol does.
        if self._inner is not None:
            self._inner.eof_received()

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        timer = self._timer
        if (
            timer is not None
            and self._inner is not None
            and self._awaiting is not _Awaiting.NOTHING
            and asyncio.get_running_loop().time() >= timer.when() - _SAME_DEADLINE_SECONDS
        ):
            # aiohttp's own keep-alive timer, set to the same length, closed the connection a
            # moment before this deadline fired: it is this deadline's close all the same.
            self._guard.count_closed(f"{self._awaiting.value}_timeout")
        self._cancel_timer()
        self._transport = None
        if self._inner is None or self.refusal is not None:
            self._guard.forget(self)  # never counted as open
        else:
            self._guard.release(self._address)
        if self._inner is not None:
            self._inner.connection_lost(exc)

    # -- requests (from connection_deadlines) ----------------------------------------------

    def request_started(self, request: web.BaseRequest) -> None:
        """The request's head has arrived; its body now has ``body_timeout``."""
        self._handling = request
        self._next_began = False
        self._body_timed_out = False
        self._cancel_timer()
        self._awaiting = _Awaiting.NOTHING
        if not request.content.is_eof():
            self._expect(_Awaiting.BODY)
            request.content.on_eof(self._body_complete)

    def request_finished(self) -> bool:
        """The handler returned; whether the connection must close after its answer."""
        self._handling = None
        if self._body_timed_out:
            return True  # the grace timer closes it if the answer does not
        if self._next_began and self._awaiting is _Awaiting.NOTHING:
            self._expect(_Awaiting.HEAD)
        return False

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    # -- deadlines -------------------------------------------------------------------------

    def _expect(self, what: _Awaiting) -> None:
        self._cancel_timer()
        self._awaiting = what
        limits = self._guard.limits
        delay = limits.head_timeout if what is _Awaiting.HEAD else limits.body_timeout
        self._timer = asyncio.get_running_loop().call_later(delay, self._expired)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _body_complete(self) -> None:
        if self._awaiting is _Awaiting.BODY:
            self._cancel_timer()
            self._awaiting = _Awaiting.NOTHING

    def _expired(self) -> None:
        self._timer = None
        what, self._awaiting = self._awaiting, _Awaiting.NOTHING
        if self._inner is None or self._transport is None:
            return
        if what is _Awaiting.HEAD and self._head_arrived():
            # The head came in time; its handler has not started because the event loop is
            # behind (a busy process), which is not the client's delay: request_started
            # takes over when it does.
            return
        self._guard.count_closed(f"{what.value}_timeout")
        request = self._handling
        if what is _Awaiting.BODY and request is not None:
            # The handler is reading (or streaming) the body: its read fails, it answers 408
            # and the connection closes after that answer, or after the grace period.
            self._body_timed_out = True
            request.content.set_exception(
                RequestTimeout("The request body did not arrive in time.")
            )
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(BODY_TIMEOUT_GRACE_SECONDS, self._close)
            return
        self._close()

    def _head_arrived(self) -> bool:
        """Whether aiohttp has parsed a request head its handler has not picked up yet
        (aiohttp keeps them in ``RequestHandler._messages``; none when that changes)."""
        return bool(getattr(self._inner, "_messages", None))

    def _close(self) -> None:
        self._timer = None
        if self._inner is not None:
            self._inner.force_close()

    # -- refusal ---------------------------------------------------------------------------

    def _refuse(self, transport: asyncio.Transport, reason: str) -> None:
        """Serve one request, answered 503 (:func:`connection_deadlines`), then close;
        whatever is not done within the linger time is closed unanswered."""
        if not self._guard.linger(self):
            transport.abort()
            return
        self.refusal = reason
        self._serve(transport)
        self._timer = asyncio.get_running_loop().call_later(REFUSAL_LINGER_SECONDS, self.abort)


@web.middleware
async def connection_deadlines(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Tell the request's GuardedConnection when the request starts and ends (outermost
    middleware: a body timeout is seen as the answer the client gets)."""
    transport = request.transport
    connection = transport.get_protocol() if transport is not None else None
    if not isinstance(connection, GuardedConnection):
        return await handler(request)
    if connection.refusal is not None:
        refused = await refusal_answer(request, refusal_error(connection.refusal))
        refused.force_close()
        return refused
    connection.request_started(request)
    try:
        response = await handler(request)
    finally:
        close = connection.request_finished()
    if close:
        response.force_close()
    return response
