"""Encoded '/' through the proxy: reads outside /accounts pass byte for byte, the rest is 400.

Requests are written by hand on a socket so no client library re-encodes or normalises the
target before the proxy sees it.
"""

from __future__ import annotations

import asyncio

import pytest
from yarl import URL

from tests.fixtures.gate import EchoUpstream, Gate
from tests.fixtures.paper import PaperBroker


async def send_raw(base_url: str, method: str, target: str, body: bytes = b"") -> tuple[int, bytes]:
    """One hand-written HTTP/1.1 request; (status, body)."""
    url = URL(base_url)
    reader, writer = await asyncio.open_connection(url.host, url.port)
    head = (
        f"{method} {target} HTTP/1.1\r\nHost: {url.raw_authority}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    try:
        writer.write(head.encode() + body)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()
        await writer.wait_closed()
    status_line, _, rest = raw.partition(b"\r\n")
    return int(status_line.split(b" ", 2)[1]), rest.partition(b"\r\n\r\n")[2]


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize(
    "target",
    [
        "/instruments/future-options/.%2FESZ6%20E3AZ6%20261218P6000",
        "/instruments/cryptocurrencies/BTC%2fUSD",
        "/instruments/futures/%2FESZ6?per-page=10&symbol[]=%2FESH7",
        "/customers/me/accounts/5WT00001%2F",
    ],
)
async def test_reads_with_an_encoded_slash_are_forwarded_as_sent(
    echo_gatekeeper: Gate, echo_upstream: EchoUpstream, method: str, target: str
) -> None:
    status, _ = await send_raw(echo_gatekeeper.proxy_url, method, target)
    assert status == 200
    assert [(seen["method"], seen["raw_path"]) for seen in echo_upstream.received] == [
        (method, target)
    ]


REFUSED = [
    *(
        (method, "/instruments/futures/%2FESZ6")
        for method in ("POST", "PUT", "PATCH", "DELETE", "OPTIONS")
    ),
    ("POST", "/accounts/5WT00001/orders%2Fdry-run"),
    ("POST", "/accounts/5WT00001%2Forders"),
    ("PUT", "/accounts/5WT00001/orders/100001%2F"),
    ("DELETE", "/accounts/5WT00001/orders%2F100001"),
    ("GET", "/accounts/5WT00001/positions%2Fx"),
    ("GET", "/accounts/5WT00001/orders%2F100001"),
    ("HEAD", "/Accounts/5WT00001/balances%2FUSD"),
    ("GET", "/accounts%2F5WT00001/positions"),
    ("GET", "/instruments/..%2F..%2Faccounts/5WT00001/positions"),
    ("GET", "/instruments/futures/%2EESZ6"),
    ("GET", "/instruments/cryptocurrencies/BTC%5CUSD"),
    ("GET", "/instruments/cryptocurrencies/BTC%2FUSD%00"),
    ("GET", "/instruments/future-options/%2e%2FESZ6%20E3AZ6%20261218P6000"),
]


@pytest.mark.parametrize(("method", "target"), REFUSED)
async def test_other_encoded_separators_are_refused_before_the_broker(
    gatekeeper: Gate, paper_broker: PaperBroker, method: str, target: str
) -> None:
    body = b'{"order-type": "Market"}' if method in ("POST", "PUT", "PATCH") else b""
    status, answer = await send_raw(gatekeeper.proxy_url, method, target, body)
    assert status == 400, answer
    if method != "HEAD":
        assert b'"invalid_path"' in answer
    assert paper_broker.book.seen_requests() == []
    assert paper_broker.book.received_orders() == []
