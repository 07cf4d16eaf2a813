"""Helpers for the edge tests (``test_edge_*.py``): the gatekeeper as deployed, under either
HTTP parser, a raw-socket client, and an upstream that records the exact bytes it received.

``gatekeeper serve`` runs as its own process so the parser can be chosen: aiohttp's C parser
(llhttp, the default) or its pure-Python one (``AIOHTTP_NO_EXTENSIONS=1``). Requests are
written by hand on a socket so no client library normalises, re-encodes or completes them.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from tests.processes import base_environment, free_ports, spawn_cli, stop_all, wait_http

PARSERS = ("c", "python")


def parser_environment(parser: str, env: dict[str, str]) -> dict[str, str]:
    """``env`` with the environment that picks aiohttp's C or pure-Python HTTP parser."""
    env = {k: v for k, v in env.items() if k != "AIOHTTP_NO_EXTENSIONS"}
    if parser == "python":
        env["AIOHTTP_NO_EXTENSIONS"] = "1"
    return env


async def parser_in_use(parser: str) -> str:
    """The request parser class a process started with ``parser``'s environment uses."""
    code = "import aiohttp.http_parser as h; print(h.HttpRequestParser.__module__)"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code,
        env=parser_environment(parser, base_environment("", "")),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await process.communicate()
    return out.decode().strip()


@asynccontextmanager
async def served_gatekeeper(
    parser: str,
    upstream_url: str,
    database_url: str,
    redis_url: str,
    settings: dict[str, str] | None = None,
) -> AsyncIterator[str]:
    """``gatekeeper serve`` in front of ``upstream_url``; yields the proxy's base URL.

    ``settings`` are extra ``GATEKEEPER_*`` environment variables."""
    proxy_port, admin_port = free_ports(2)
    env = parser_environment(parser, base_environment(database_url, redis_url))
    env.update(
        GATEKEEPER_PROXY__PORT=str(proxy_port),
        GATEKEEPER_ADMIN__PORT=str(admin_port),
        GATEKEEPER_PROXY__UPSTREAM_URL=upstream_url,
    )
    env.update(settings or {})
    process = await spawn_cli(["serve"], env)
    try:
        await wait_http(f"http://127.0.0.1:{admin_port}/healthz", process=process)
        yield f"http://127.0.0.1:{proxy_port}"
    finally:
        await stop_all([process])


@dataclass
class Reply:
    """One raw HTTP/1.1 answer."""

    status: int
    headers: CIMultiDict[str]
    body: bytes

    @property
    def code(self) -> str | None:
        """The top-level ``error.code`` of a JSON error body, if any."""
        import json

        try:
            code = json.loads(self.body)["error"]["code"]
        except (ValueError, KeyError, TypeError):
            return None
        return str(code)


def _dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += data[:size]
        data = data[size + 2 :]
    return out


def parse_reply(raw: bytes) -> Reply:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers: CIMultiDict[str] = CIMultiDict()
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.add(name.strip(), value.strip())
    if "chunked" in headers.get("Transfer-Encoding", "").lower():
        body = _dechunk(body)
    return Reply(status, headers, body)


async def raw_request(
    base_url: str,
    method: str,
    target: str,
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    *,
    content_length: bool = True,
) -> Reply:
    """Send one hand-written request (``Connection: close``) and read the whole answer.

    ``headers`` are sent as given, in order, after ``Host``; ``Content-Length`` is added for
    ``body`` unless ``content_length`` is false (then ``headers`` must frame the body).
    """
    url = URL(base_url)
    lines = [f"{method} {target} HTTP/1.1", f"Host: {url.raw_authority}"]
    lines += [f"{name}: {value}" for name, value in headers or []]
    if not any(name.lower() == "connection" for name, _ in headers or []):
        lines.append("Connection: close")
    if content_length:
        lines.append(f"Content-Length: {len(body)}")
    reader, writer = await asyncio.open_connection(url.host, url.port)
    try:
        writer.write("\r\n".join(lines).encode("latin-1") + b"\r\n\r\n" + body)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), timeout=20)
    finally:
        writer.close()
        await writer.wait_closed()
    return parse_reply(raw)


@dataclass
class Seen:
    method: str
    raw_path: str
    headers: CIMultiDict[str]
    body: bytes


@dataclass
class RecordingUpstream:
    """An upstream that answers 200 ``{"data": {}}`` and records every request exactly as it
    arrived: raw path, headers, and the body bytes without any decompression."""

    url: str = ""
    seen: list[Seen] = field(default_factory=list)


@asynccontextmanager
async def recording_upstream() -> AsyncIterator[RecordingUpstream]:
    upstream = RecordingUpstream()

    async def handler(request: web.Request) -> web.Response:
        body = await request.read()
        upstream.seen.append(
            Seen(request.method, request.raw_path, CIMultiDict(request.headers), body)
        )
        return web.json_response({"data": {"ok": True}, "context": request.path})

    app = web.Application(client_max_size=64 * 1024**2, handler_args={"auto_decompress": False})
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        host, port = runner.addresses[0][:2]
        upstream.url = f"http://{host}:{port}"
        yield upstream
    finally:
        await runner.cleanup()
