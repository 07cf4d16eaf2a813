"""Helpers for the capacity tests (``test_capacity_*.py``): raw-socket clients that are slow
on purpose, and how long the gatekeeper let them stay.

Requests are written by hand so nothing completes or paces them for us. A client may connect
from another loopback address (``127.0.0.2``...) so per-address limits can be told apart.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from dataclasses import dataclass
from typing import Any, Literal

from yarl import URL

SlowKind = Literal["head", "body_order", "body_passthrough"]


def host_port(url: str) -> tuple[str, int]:
    parsed = URL(url)
    assert parsed.host is not None
    assert parsed.port is not None
    return parsed.host, parsed.port


async def connect(
    url: str, source: str = "127.0.0.1"
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = host_port(url)
    return await asyncio.open_connection(host, port, local_addr=(source, 0))


async def read_until_closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection (or resets it)."""
    data = b""
    try:
        while chunk := await reader.read(65536):
            data += chunk
    except (ConnectionError, OSError):
        pass
    return data


def status_of(answer: bytes) -> int | None:
    """The status code of a raw HTTP/1.1 answer, if there is one."""
    if not answer.startswith(b"HTTP/1.1 "):
        return None
    return int(answer[9:12])


def body_of(answer: bytes) -> Any:
    return json.loads(answer.partition(b"\r\n\r\n")[2])


@dataclass(frozen=True)
class SlowResult:
    """One slow connection: how long it lived and what it was answered."""

    kind: SlowKind
    lifetime: float  # seconds from connecting to the server's close
    status: int | None


ORDER_PATH = "/accounts/5WT00001/orders"


def _head(kind: SlowKind) -> bytes:
    if kind == "head":
        return f"POST {ORDER_PATH} HTTP/1.1\r\nHost: gatekeeper\r\n".encode()
    path = ORDER_PATH if kind == "body_order" else "/sessions"
    # No credentials: the attack needs none.
    return (
        f"POST {path} HTTP/1.1\r\nHost: gatekeeper\r\nContent-Type: application/json\r\n"
        "Content-Length: 10000\r\n\r\n"
    ).encode()


async def slow_connection(url: str, kind: SlowKind, source: str, interval: float) -> SlowResult:
    """Open a connection and trickle a request (one header line, or one body byte, every
    ``interval`` seconds) until the server closes it."""
    # Connected and the head sent in one step, outside the event loop: on a busy machine the
    # test's own loop may lag, and a head written late is the client's delay, not a slow head
    # the gatekeeper should tell apart.
    started = time.monotonic()
    sock = socket.create_connection(host_port(url), source_address=(source, 0))
    try:
        sock.sendall(_head(kind))
        reader, writer = await asyncio.open_connection(sock=sock)
    except BaseException:
        sock.close()
        raise
    reading = asyncio.ensure_future(read_until_closed(reader))
    try:
        while not reading.done():
            writer.write(b"X-Slow: 1\r\n" if kind == "head" else b" ")
            await writer.drain()
            await asyncio.wait([reading], timeout=interval)
    except (ConnectionError, OSError):
        pass
    answer = await reading
    lifetime = time.monotonic() - started
    writer.close()
    return SlowResult(kind, lifetime, status_of(answer))


async def keep_slow(
    url: str, kind: SlowKind, source: str, interval: float, until: float
) -> list[SlowResult]:
    """Reopen a slow connection each time the server closes one, until ``until``
    (``time.monotonic()``): a sustained attack from one socket's worth of client."""
    results: list[SlowResult] = []
    while time.monotonic() < until:
        try:
            results.append(await slow_connection(url, kind, source, interval))
        except (ConnectionError, OSError):
            await asyncio.sleep(0.05)
    return results


def attack_in_process(
    url: str, counts: dict[SlowKind, int], source: str, interval: float, until: float
) -> list[SlowResult]:
    """``keep_slow`` for ``counts`` connections of each kind, on this process's own event loop
    (run in another process, so that the attack does not slow down the test's own client:
    ``time.monotonic()`` is the same clock in every process of the machine)."""

    async def attack() -> list[SlowResult]:
        runs = [
            keep_slow(url, kind, source, interval, until)
            for kind, count in counts.items()
            for _ in range(count)
        ]
        return [result for results in await asyncio.gather(*runs) for result in results]

    return asyncio.run(attack())
