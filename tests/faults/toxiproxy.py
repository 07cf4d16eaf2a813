"""A small asyncio TCP fault proxy with Toxiproxy's vocabulary, for the fault suite.

It sits between the gatekeeper and one of its dependencies (Postgres, Redis, the broker) so a
test can make that link misbehave the way networks and servers do, without touching the
server itself: the gatekeeper is configured with the proxy's address instead of the server's.

Toxics (Toxiproxy's names and meanings; each applies to one direction and can be added or
removed while connections are open, every chunk looks at the current set):

- ``latency``: each chunk is held ``latency`` seconds (+/- ``jitter``).
- ``timeout``: a blackhole; data is swallowed, nothing answers. With ``timeout`` > 0 the
  connection is closed that many seconds after the first swallowed chunk.
- ``reset_peer``: the connection is reset (TCP RST) on the next chunk, after ``timeout``.
- ``slicer``: each chunk is written in pieces of ``average_size`` (+/- ``size_variation``)
  bytes, ``delay`` seconds apart.
- ``limit_data``: the connection is closed once ``bytes`` bytes went through.
- ``garble`` (not Toxiproxy's): each chunk's bytes are inverted, from byte ``bytes`` on.

``once=True`` removes a toxic after it first acted (one truncated answer, not every one).

``down()`` closes the listener and every connection (new ones are refused) until ``up()``;
``cut()`` resets the connections open now and keeps listening. Directions: ``upstream`` is
client to server, ``downstream`` server to client.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import socket
import struct
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Literal

Direction = Literal["upstream", "downstream"]
ToxicKind = Literal["latency", "timeout", "reset_peer", "slicer", "limit_data", "garble"]
CHUNK = 65536


@dataclass(frozen=True)
class Toxic:
    """One fault on one direction of every connection (new and open)."""

    name: str
    kind: ToxicKind
    direction: Direction
    latency: float = 0.0
    jitter: float = 0.0
    timeout: float = 0.0
    average_size: int = 16
    size_variation: int = 0
    delay: float = 0.0
    bytes: int = 0
    once: bool = False


@dataclass(eq=False)
class _Link:
    """One client connection and its connection to the server."""

    client: asyncio.StreamWriter
    server: asyncio.StreamWriter
    sent: dict[Direction, int] = field(default_factory=lambda: {"upstream": 0, "downstream": 0})
    closing: bool = False

    def reset(self) -> None:
        """Both sockets closed with RST (SO_LINGER 0), as a crashed peer or a firewall does."""
        self.closing = True
        for writer in (self.client, self.server):
            sock = writer.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()

    def close(self) -> None:
        """Both sockets closed cleanly (FIN)."""
        self.closing = True
        for writer in (self.client, self.server):
            writer.close()


class FaultProxy:
    """A TCP proxy on 127.0.0.1 (a random port, kept across ``down``/``up``) to one server."""

    def __init__(self, name: str, upstream_host: str, upstream_port: int) -> None:
        self.name = name
        self.upstream = (upstream_host, upstream_port)
        self.port = 0
        self.toxics: dict[str, Toxic] = {}
        self.connections_accepted = 0
        self._links: set[_Link] = set()
        self._server: asyncio.Server | None = None
        self._names = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> FaultProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def down(self) -> None:
        """Stop listening and reset every connection: the server is unreachable."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        self.cut()
        if server is not None:
            await server.wait_closed()

    async def up(self) -> None:
        """Listen again (same port)."""
        if self._server is None:
            await self.start()

    def cut(self) -> None:
        """Reset every open connection; new ones are accepted as before."""
        for link in list(self._links):
            link.reset()

    async def close(self) -> None:
        await self.down()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- toxics ------------------------------------------------------------------------------

    def add(
        self, kind: ToxicKind, direction: Direction = "downstream", **params: float | bool
    ) -> str:
        """Add a toxic (parameters as in :class:`Toxic`; seconds and bytes); its name back."""
        name = f"{kind}_{direction}_{next(self._names)}"
        self.toxics[name] = Toxic(name, kind, direction, **params)  # type: ignore[arg-type]
        return name

    def remove(self, name: str) -> None:
        self.toxics.pop(name, None)

    def clear(self) -> None:
        self.toxics.clear()

    def _active(self, direction: Direction) -> list[Toxic]:
        return [toxic for toxic in self.toxics.values() if toxic.direction == direction]

    # -- relaying ----------------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections_accepted += 1
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()  # the server is gone: so is this connection
            return
        link = _Link(writer, server_writer)
        if self._server is None:  # went down while this one connected upstream: refused too
            link.reset()
            return
        self._links.add(link)
        pumps = [
            self._spawn(self._pump(link, "upstream", reader, server_writer)),
            self._spawn(self._pump(link, "downstream", server_reader, writer)),
        ]
        await asyncio.gather(*pumps, return_exceptions=True)
        self._links.discard(link)
        link.close()

    def _spawn(self, coroutine: Coroutine[object, object, None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _pump(
        self,
        link: _Link,
        direction: Direction,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
    ) -> None:
        try:
            while not link.closing:
                data = await source.read(CHUNK)
                if not data:
                    if sink.can_write_eof() and not link.closing:
                        sink.write_eof()
                    return
                await self._deliver(link, direction, data, sink)
        except (ConnectionError, OSError):
            link.reset()

    async def _deliver(
        self, link: _Link, direction: Direction, data: bytes, sink: asyncio.StreamWriter
    ) -> None:
        for toxic in self._active(direction):
            if toxic.once and toxic.kind not in ("latency", "slicer", "limit_data"):
                self.remove(toxic.name)
            if toxic.kind == "garble":
                data = data[: toxic.bytes] + bytes(255 - b for b in data[toxic.bytes :])
            elif toxic.kind == "latency":
                jitter = random.uniform(-toxic.jitter, toxic.jitter) if toxic.jitter else 0.0
                await asyncio.sleep(max(0.0, toxic.latency + jitter))
            elif toxic.kind == "timeout":
                if toxic.timeout > 0:
                    asyncio.get_running_loop().call_later(toxic.timeout, link.close)
                return  # swallowed
            elif toxic.kind == "reset_peer":
                await asyncio.sleep(toxic.timeout)
                link.reset()
                return
            elif toxic.kind == "limit_data":
                room = toxic.bytes - link.sent[direction]
                if len(data) >= room:
                    if toxic.once:
                        self.remove(toxic.name)
                    await self._write(link, direction, data[: max(room, 0)], sink)
                    link.close()
                    return
        slicer = next((t for t in self._active(direction) if t.kind == "slicer"), None)
        if slicer is None:
            await self._write(link, direction, data, sink)
            return
        while data and not link.closing:
            size = slicer.average_size + random.randint(
                -slicer.size_variation, slicer.size_variation
            )
            piece, data = data[: max(1, size)], data[max(1, size) :]
            await self._write(link, direction, piece, sink)
            if data:
                await asyncio.sleep(slicer.delay)

    async def _write(
        self, link: _Link, direction: Direction, data: bytes, sink: asyncio.StreamWriter
    ) -> None:
        if link.closing or not data:
            return
        sink.write(data)
        link.sent[direction] += len(data)
        await sink.drain()
