"""The proxy listener forwards transparently and only ever to the configured upstream."""

from __future__ import annotations

import asyncio
import gzip
import io
import logging
from collections.abc import AsyncIterator

import aiohttp
import pytest
from yarl import URL

from tests.fixtures.gate import EchoUpstream, Gate, echoed, make_settings, start_gatekeeper

SECRET = "Bearer s3cr3t-token-never-logged"


def header(seen: dict[str, object], name: str) -> list[str]:
    headers = seen["headers"]
    assert isinstance(headers, list)
    return [value for key, value in headers if key.lower() == name.lower()]


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        yield session


async def test_request_is_forwarded_with_end_to_end_headers(
    echo_gatekeeper: Gate, echo_upstream: EchoUpstream, client: aiohttp.ClientSession
) -> None:
    headers = {
        "Authorization": SECRET,
        "Accept-Version": "20251101",
        "User-Agent": "tastytrade-sdk-python",
        "X-Forwarded-For": "203.0.113.9",
        "Connection": "keep-alive, X-Private-Hop",
        "X-Private-Hop": "drop me",
        "Proxy-Authorization": "Basic drop-me-too",
        "X-HTTP-Method-Override": "POST",
        "X-Custom": "kept",
    }
    url = URL(
        echo_gatekeeper.proxy_url
        + "/accounts/5WT00001/positions?symbol=SPY%20%20%20261218C00600000&a=1&a=2",
        encoded=True,
    )
    async with client.get(url, headers=headers) as response:
        assert response.status == 200
        seen = echoed(await response.read())
        assert response.headers["X-Upstream"] == "echo"
        assert "X-Hop" not in response.headers  # named in the upstream's Connection header
    assert seen["method"] == "GET"
    assert (
        seen["raw_path"]
        == "/accounts/5WT00001/positions?symbol=SPY%20%20%20261218C00600000&a=1&a=2"
    )
    assert header(seen, "Authorization") == [SECRET]
    assert header(seen, "Accept-Version") == ["20251101"]
    assert header(seen, "User-Agent") == ["tastytrade-sdk-python"]
    assert header(seen, "X-Custom") == ["kept"]
    assert header(seen, "X-Forwarded-For") == ["203.0.113.9, 127.0.0.1"]
    assert header(seen, "X-Private-Hop") == []
    assert header(seen, "Proxy-Authorization") == []
    assert header(seen, "X-HTTP-Method-Override") == []
    assert header(seen, "Host") == [URL(echo_upstream.url).raw_authority]


async def test_bodies_are_forwarded_byte_for_byte(
    echo_gatekeeper: Gate, client: aiohttp.ClientSession
) -> None:
    body = b'{"order-type": "Limit", "price": "1.50", "unknown-key": [1, 2.50, "x"]}\n'
    async with client.post(
        echo_gatekeeper.proxy_url + "/margin/accounts/5WT00001/dry-run",
        data=body,
        headers={"Content-Type": "application/json"},
    ) as response:
        assert response.status == 201
        seen = echoed(await response.read())
    assert seen["body"].encode("latin-1") == body
    assert header(seen, "Content-Type") == ["application/json"]


async def test_expect_continue_is_answered_here_and_the_body_forwarded(
    echo_gatekeeper: Gate, echo_upstream: EchoUpstream, client: aiohttp.ClientSession
) -> None:
    upload = b"y" * 2_000_000
    async with client.put(
        echo_gatekeeper.proxy_url + "/upload", data=io.BytesIO(upload), expect100=True
    ) as response:
        assert response.status == 200
    seen = echo_upstream.received[-1]
    assert seen["body"].encode("latin-1") == upload
    assert header(seen, "Expect") == []


async def test_large_bodies_stream_both_ways(
    echo_gatekeeper: Gate, echo_upstream: EchoUpstream, client: aiohttp.ClientSession
) -> None:
    upload = bytes(range(256)) * 20_000  # ~5 MB
    async with client.put(
        echo_gatekeeper.proxy_url + "/upload", data=io.BytesIO(upload)
    ) as response:
        assert response.status == 200
        await response.read()
    assert echo_upstream.received[-1]["body"].encode("latin-1") == upload

    size = 20 * 1024 * 1024 + 7
    async with client.get(echo_gatekeeper.proxy_url + f"/_big?bytes={size}") as response:
        assert response.status == 200
        received = 0
        async for chunk in response.content.iter_chunked(65536):
            received += len(chunk)
    assert received == size


async def test_compressed_responses_pass_unchanged(
    echo_gatekeeper: Gate, client: aiohttp.ClientSession
) -> None:
    async with client.get(
        echo_gatekeeper.proxy_url + "/_gzip", headers={"Accept-Encoding": "gzip"}
    ) as response:
        assert response.headers["Content-Encoding"] == "gzip"
        assert gzip.decompress(await response.read()) == b'{"data": "compressed"}'


@pytest.mark.parametrize("status", [204, 401, 404, 429, 500])
async def test_upstream_status_is_relayed(
    echo_gatekeeper: Gate, client: aiohttp.ClientSession, status: int
) -> None:
    async with client.delete(echo_gatekeeper.proxy_url + f"/_status?code={status}") as response:
        assert response.status == status


async def test_an_answer_cut_short_is_a_whole_502(
    echo_gatekeeper: Gate, client: aiohttp.ClientSession
) -> None:
    # A small answer is read whole before it is relayed: a broker that hangs up part-way
    # gets the bot a clean 502 in TastyTrade's envelope, not a truncated 200.
    async with client.get(echo_gatekeeper.proxy_url + "/_short") as response:
        assert response.status == 502
        body = await response.json()
    assert body["error"]["code"] == "broker_unavailable"
    assert echo_gatekeeper.metrics.upstream_errors.labels("disconnected")._value.get() == 1


async def test_head_and_small_answers_keep_their_length(
    echo_gatekeeper: Gate, client: aiohttp.ClientSession
) -> None:
    async with client.get(echo_gatekeeper.proxy_url + "/plain") as response:
        body = await response.read()
        assert response.headers["Content-Length"] == str(len(body))
        assert response.headers["X-Upstream"] == "echo"
        assert "X-Hop" not in response.headers  # named in Connection: hop-by-hop
    async with client.head(echo_gatekeeper.proxy_url + "/plain") as response:
        assert response.status == 200
        assert response.headers["Content-Length"] == str(len(body) - len("GET") + len("HEAD"))


async def test_unreachable_broker_is_502_in_tastytrade_envelope(
    database_url: str, redis_url: str, client: aiohttp.ClientSession, unused_tcp_port: int
) -> None:
    settings = make_settings(f"http://127.0.0.1:{unused_tcp_port}", database_url, redis_url)
    async with start_gatekeeper(settings) as gate:
        async with client.get(gate.proxy_url + "/customers/me/accounts") as response:
            assert response.status == 502
            body = await response.json()
        assert body["error"]["code"] == "broker_unavailable"
        assert gate.metrics.upstream_errors.labels("unavailable")._value.get() == 1


async def test_slow_broker_is_504_and_counted(
    echo_upstream: EchoUpstream, database_url: str, redis_url: str, client: aiohttp.ClientSession
) -> None:
    settings = make_settings(echo_upstream.url, database_url, redis_url, read_timeout_seconds=0.5)
    async with start_gatekeeper(settings) as gate:
        async with client.get(gate.proxy_url + "/_slow?seconds=3") as response:
            assert response.status == 504
            body = await response.json()
        assert body["error"]["code"] == "broker_timeout"
        assert gate.metrics.upstream_errors.labels("timeout")._value.get() == 1


@pytest.mark.parametrize(
    "path",
    [
        "/accounts/../admin",
        "/accounts/./5WT00001/orders",
        "/accounts/%2e%2e/admin",
        "/accounts/%2E/orders",
        "/accounts%2f5WT00001/orders",
        "/accounts%5c5WT00001",
        "/accounts\\5WT00001",
        "/accounts//orders",
        "/@127.0.0.1:1/x",
        "/accounts/%00/orders",
    ],
)
async def test_ambiguous_paths_are_refused(
    echo_gatekeeper: Gate, echo_upstream: EchoUpstream, path: str
) -> None:
    status, body = await raw_request(echo_gatekeeper.proxy_url, f"GET {path} HTTP/1.1\r\n")
    assert status == 400, body
    assert b'"invalid_path"' in body
    assert echo_upstream.received == []


async def raw_request(
    base_url: str, request_line: str, host: str | None = None
) -> tuple[int, bytes]:
    """Send a hand-written HTTP/1.1 request; return (status, body)."""
    url = URL(base_url)
    reader, writer = await asyncio.open_connection(url.host, url.port)
    try:
        writer.write(
            (
                request_line + f"Host: {host or url.raw_authority}\r\nConnection: close\r\n\r\n"
            ).encode()
        )
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()
        await writer.wait_closed()
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


class ConnectionCounter:
    def __init__(self) -> None:
        self.count = 0

    async def on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.count += 1
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\nevil")
        await writer.drain()
        writer.close()


async def test_no_request_can_steer_the_proxy_to_another_host(
    echo_gatekeeper: Gate, echo_upstream: EchoUpstream, client: aiohttp.ClientSession
) -> None:
    evil = ConnectionCounter()
    server = await asyncio.start_server(evil.on_connect, "127.0.0.1", 0)
    evil_authority = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        attempts = [
            (f"GET http://{evil_authority}/customers/me HTTP/1.1\r\n", evil_authority),
            (f"GET //{evil_authority}/customers/me HTTP/1.1\r\n", None),
            (f"GET /@{evil_authority}/customers/me HTTP/1.1\r\n", None),
            (f"CONNECT {evil_authority} HTTP/1.1\r\n", evil_authority),
            (
                "GET /customers/me HTTP/1.1\r\nX-Forwarded-Host: " + evil_authority + "\r\n",
                evil_authority,
            ),
        ]
        statuses = [
            await raw_request(echo_gatekeeper.proxy_url, line, host) for line, host in attempts
        ]
        # A redirect from the broker is relayed, never followed.
        async with client.get(
            echo_gatekeeper.proxy_url + f"/_redirect?to=http://{evil_authority}/x",
            allow_redirects=False,
        ) as response:
            assert response.status == 302
            assert response.headers["Location"] == f"http://{evil_authority}/x"
    finally:
        server.close()
        await server.wait_closed()
    assert evil.count == 0
    assert [status for status, _ in statuses[:3]] == [400, 400, 400]
    assert statuses[3][0] in (400, 404)  # CONNECT's authority-form target matches no route
    # Only the forged X-Forwarded-Host request and the redirect reached the upstream.
    assert len(echo_upstream.received) == 2
    # The forged Host went to the configured upstream, with the upstream's own Host.
    forged = echo_upstream.received[0]
    assert header(forged, "Host") == [URL(echo_upstream.url).raw_authority]


async def test_secrets_never_reach_logs_or_metrics(
    echo_gatekeeper: Gate, client: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for path in ["/customers/me", "/_status?code=401", "/accounts/%2e%2e/x"]:
        async with client.get(
            echo_gatekeeper.proxy_url + path, headers={"Authorization": SECRET}
        ) as response:
            await response.read()
    async with client.get(echo_gatekeeper.admin_url + "/metrics") as response:
        exposition = await response.text()
    assert "gatekeeper_proxy_requests_total" in exposition
    assert "s3cr3t" not in exposition
    assert "s3cr3t" not in caplog.text
