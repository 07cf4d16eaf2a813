"""Issue 8, items 1, 6 and 9: what an order body may look like, and that it arrives unchanged.

- Item 1: a body declared ``charset=utf-7`` (or ``unicode_escape``) that reads as 1 share in
  UTF-8 and as 1,000 shares in the declared charset: the gatekeeper checked the first and the
  broker placed the second. Checked routes now take ``application/json`` with no charset or
  ``charset=utf-8`` only, without ``Content-Encoding``; anything else is 415
  ``unsupported_media_type`` with a decision row, never forwarded.
- Item 6: a gzip body was decompressed by the proxy's HTTP server and forwarded still labelled
  ``Content-Encoding: gzip`` (cut to the compressed length on pass-through). Pass-through now
  forwards the exact bytes.
- Item 9: a body above the listener's 1 MiB limit got 413 without a decision row.

Every attack runs against ``gatekeeper serve`` under both HTTP parsers, over a raw socket.
"""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import AsyncIterator

import aiohttp
import asyncpg
import pytest

from tests.fixtures.orders import order
from tests.fixtures.paper import PaperBroker
from tests.security.edge import (
    PARSERS,
    parser_in_use,
    raw_request,
    recording_upstream,
    served_gatekeeper,
)

DECISION = "X-Gatekeeper-Decision-Id"


@pytest.fixture(params=PARSERS)
async def proxy(
    request: pytest.FixtureRequest, paper_broker: PaperBroker, database_url: str, redis_url: str
) -> AsyncIterator[str]:
    """``gatekeeper serve`` (C or Python HTTP parser) in front of the paper broker."""
    async with served_gatekeeper(request.param, paper_broker.url, database_url, redis_url) as url:
        yield url


def utf7_smuggled(injected: str) -> bytes:
    """An order for 1 AAPL whose note, read as UTF-7, closes the string and adds ``injected``."""
    shifted = base64.b64encode(injected.encode("utf-16-be")).decode().rstrip("=")
    return _with_note("+" + shifted + "-")


def escape_smuggled(injected: str) -> bytes:
    """The same order, where ``unicode_escape`` turns JSON escapes into real quotes."""
    return _with_note("".join(f"\\u{ord(c):04x}" if c == '"' else c for c in injected))


def _with_note(note: str) -> bytes:
    body = order("AAPL", 1, "150.00")
    text = json.dumps(body, separators=(",", ":"))
    # The note goes into the leg, after its quantity, so a later "quantity" wins at a lenient
    # parser (JSON's last-duplicate-wins) while the gatekeeper sees one key.
    head, _, tail = text.rpartition("}]")
    return f'{head},"note":"{note}"}}]{tail}'.encode()


INJECTED = '","quantity":1000,"x":"'
SMUGGLED = [
    ("application/json; charset=utf-7", utf7_smuggled(INJECTED)),
    ("application/json;charset=UTF-7", utf7_smuggled(INJECTED)),
    ("application/json; charset=unicode_escape", escape_smuggled(INJECTED)),
]


async def test_each_parser_is_the_one_asked_for() -> None:
    assert await parser_in_use("c") == "aiohttp._http_parser"
    assert await parser_in_use("python") == "aiohttp.http_parser"


@pytest.mark.parametrize(("content_type", "body"), SMUGGLED)
async def test_broker_reads_the_smuggled_quantity_when_sent_directly(
    paper_broker: PaperBroker, paper_auth: dict[str, str], content_type: str, body: bytes
) -> None:
    """The attack is real: the paper broker honours the charset, as a lenient broker would."""
    assert json.loads(body)["legs"][0]["quantity"] == 1
    headers = {**paper_auth, "Content-Type": content_type}
    url = f"{paper_broker.url}/accounts/{paper_broker.account_number}/orders/dry-run"
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=headers) as r,
    ):
        answer = await r.json()
    assert r.status == 201, answer
    assert answer["data"]["order"]["legs"][0]["quantity"] == 1000


async def test_broker_decodes_gzip_and_refuses_unknown_charsets_when_sent_directly(
    paper_broker: PaperBroker, paper_auth: dict[str, str]
) -> None:
    url = f"{paper_broker.url}/accounts/{paper_broker.account_number}/orders/dry-run"
    body = json.dumps(order("AAPL", 7, "150.00")).encode()
    gzipped = {**paper_auth, "Content-Type": "application/json", "Content-Encoding": "gzip"}
    unknown = {**paper_auth, "Content-Type": "application/json; charset=x-unknown"}
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=gzip.compress(body), headers=gzipped) as r:
            answer = await r.json()
        assert r.status == 201, answer
        assert answer["data"]["order"]["legs"][0]["quantity"] == 7
        async with session.post(url, data=body, headers=unknown) as r:
            assert r.status == 415
            assert (await r.json())["error"]["code"] == "unsupported_media_type"


async def test_charset_differential_is_refused_with_a_decision(
    proxy: str, paper_broker: PaperBroker, paper_auth: dict[str, str], pg_pool: asyncpg.Pool
) -> None:
    target = f"/accounts/{paper_broker.account_number}/orders"
    for content_type, body in SMUGGLED:
        headers = [("Authorization", paper_auth["Authorization"]), ("Content-Type", content_type)]
        reply = await raw_request(proxy, "POST", target, headers, body)
        assert (reply.status, reply.code) == (415, "unsupported_media_type"), reply.body
        assert reply.headers.get(DECISION)
    assert paper_broker.book.received_orders() == []
    rows = await pg_pool.fetch("SELECT verdict, codes FROM risk_decisions")
    assert [(r["verdict"], list(r["codes"])) for r in rows] == [
        ("reject", ["unsupported_media_type"])
    ] * len(SMUGGLED)


REFUSED_MEDIA: list[list[tuple[str, str]]] = [
    [("Content-Type", "application/json; charset=utf-16")],
    [("Content-Type", "application/json; charset=iso-8859-1")],
    [("Content-Type", "application/json; charset=utf8")],
    [("Content-Type", "application/json; charset=utf-8; charset=utf-7")],
    [("Content-Type", "application/json; charset=utf-8, application/json; charset=utf-7")],
    [("Content-Type", "application/json; boundary=x")],
    [("Content-Type", "text/json")],
    [("Content-Type", "text/plain")],
    [("Content-Type", "application/x-www-form-urlencoded")],
    [("Content-Type", "application/jsonx")],
    [],
    [("Content-Type", "application/json"), ("Content-Encoding", "gzip")],
    [("Content-Type", "application/json"), ("Content-Encoding", "identity, gzip")],
    [("Content-Type", "application/json"), ("Content-Encoding", "br")],
]


async def test_other_media_types_and_encodings_are_refused_on_checked_routes(
    proxy: str, paper_broker: PaperBroker, paper_auth: dict[str, str], pg_pool: asyncpg.Pool
) -> None:
    plain = json.dumps(order("AAPL", 1, "150.00")).encode()
    account = paper_broker.account_number
    for headers in REFUSED_MEDIA:
        encoded = any(v == "gzip" or v.endswith("gzip") for _, v in headers)
        body = gzip.compress(plain) if encoded else plain
        auth = [("Authorization", paper_auth["Authorization"])]
        for target in (f"/accounts/{account}/orders", f"/accounts/{account}/orders/dry-run"):
            reply = await raw_request(proxy, "POST", target, auth + headers, body)
            assert (reply.status, reply.code) == (415, "unsupported_media_type"), (headers, reply)
            assert reply.headers.get(DECISION)
    assert paper_broker.book.received_orders() == []
    assert not [s for s in paper_broker.book.seen_requests() if "/orders" in s.raw_path]
    count = await pg_pool.fetchval(
        "SELECT count(*) FROM risk_decisions WHERE codes = '{unsupported_media_type}'"
    )
    assert count == 2 * len(REFUSED_MEDIA)


async def test_a_second_content_type_never_reaches_the_broker(
    proxy: str, paper_broker: PaperBroker, paper_auth: dict[str, str]
) -> None:
    """Both parsers refuse a duplicate Content-Type before any handler runs (400)."""
    headers = [
        ("Authorization", paper_auth["Authorization"]),
        ("Content-Type", "application/json; charset=utf-8"),
        ("Content-Type", "application/json; charset=utf-7"),
    ]
    target = f"/accounts/{paper_broker.account_number}/orders"
    reply = await raw_request(proxy, "POST", target, headers, utf7_smuggled(INJECTED))
    assert reply.status in (400, 415), reply
    assert paper_broker.book.received_orders() == []


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "Application/JSON",
        "application/json; charset=utf-8",
        "application/json;charset=UTF-8",
        'application/json ;  charset="utf-8"',
        "application/json; charset=utf-8;",
    ],
)
async def test_plain_json_is_accepted_however_it_is_spelled(
    proxy: str, paper_broker: PaperBroker, paper_auth: dict[str, str], content_type: str
) -> None:
    body = json.dumps(order("AAPL", 1, "150.00")).encode()
    headers = [
        ("Authorization", paper_auth["Authorization"]),
        ("Content-Type", content_type),
        ("Content-Encoding", "identity"),
    ]
    target = f"/accounts/{paper_broker.account_number}/orders"
    reply = await raw_request(proxy, "POST", target, headers, body)
    assert reply.status == 201, reply.body
    # as sent, plus the external-identifier the gatekeeper names every placement with
    received = [e.body for e in paper_broker.book.received_orders()]
    assert [{k: v for k, v in r.items() if k != "external-identifier"} for r in received] == [
        json.loads(body)
    ]
    assert received[0]["external-identifier"] == f"gk-{reply.headers['X-Gatekeeper-Decision-Id']}"


async def test_pass_through_bodies_arrive_byte_for_byte_and_still_encoded(
    database_url: str, redis_url: str
) -> None:
    payload = gzip.compress(b'{"grant_type": "refresh_token", "refresh_token": "x"}' * 50)
    for parser in PARSERS:
        async with (
            recording_upstream() as upstream,
            served_gatekeeper(parser, upstream.url, database_url, redis_url) as url,
        ):
            headers = [("Content-Type", "application/json"), ("Content-Encoding", "gzip")]
            fixed = await raw_request(url, "POST", "/oauth/token", headers, payload)
            chunked_headers = [*headers, ("Transfer-Encoding", "chunked")]
            framed = f"{len(payload):x}\r\n".encode() + payload + b"\r\n0\r\n\r\n"
            chunked = await raw_request(
                url, "POST", "/sessions", chunked_headers, framed, content_length=False
            )
        assert (fixed.status, chunked.status) == (200, 200), (parser, fixed, chunked)
        first, second = upstream.seen
        assert first.body == payload, parser
        assert first.headers["Content-Length"] == str(len(payload))
        assert first.headers["Content-Encoding"] == "gzip"
        assert second.body == payload, parser
        assert second.headers["Content-Encoding"] == "gzip"


async def test_a_transfer_coding_other_than_chunked_is_refused(
    proxy: str, paper_broker: PaperBroker, paper_auth: dict[str, str], pg_pool: asyncpg.Pool
) -> None:
    """``Transfer-Encoding: gzip, chunked`` was forwarded as plain chunked bytes: the broker got
    gzip data without the coding that said so (or, on an order route, read the compressed
    bytes as the body). Refused with 400 before anything is forwarded."""
    payload = gzip.compress(json.dumps(order("AAPL", 1, "150.00")).encode())
    framed = f"{len(payload):x}\r\n".encode() + payload + b"\r\n0\r\n\r\n"
    headers = [
        ("Authorization", paper_auth["Authorization"]),
        ("Content-Type", "application/json"),
        ("Transfer-Encoding", "gzip, chunked"),
    ]
    seen_before = paper_broker.book.seen_requests()
    target = f"/accounts/{paper_broker.account_number}/orders"
    for path in (target, "/sessions/validate"):
        reply = await raw_request(proxy, "POST", path, headers, framed, content_length=False)
        assert (reply.status, reply.code) == (400, "invalid_transfer_encoding"), (path, reply)
    assert paper_broker.book.seen_requests() == seen_before
    rows = await pg_pool.fetch("SELECT verdict, codes FROM risk_decisions")
    assert [(r["verdict"], list(r["codes"])) for r in rows] == [
        ("reject", ["invalid_transfer_encoding"])
    ]


async def test_body_above_every_limit_gets_413_with_a_decision(
    proxy: str, paper_broker: PaperBroker, paper_auth: dict[str, str], pg_pool: asyncpg.Pool
) -> None:
    target = f"/accounts/{paper_broker.account_number}/orders"
    headers = [("Authorization", paper_auth["Authorization"]), ("Content-Type", "application/json")]
    small_pad = b'{"pad": "' + b"x" * 70_000 + b'"}'  # above risk.max_body_bytes (64 KiB)
    huge_pad = b'{"pad": "' + b"x" * 1_100_000 + b'"}'  # above the listener's 1 MiB too
    replies = [
        await raw_request(proxy, "POST", target, headers, small_pad),
        await raw_request(proxy, "POST", target, headers, huge_pad),
        await raw_request(
            proxy,
            "POST",
            target,
            [*headers, ("Transfer-Encoding", "chunked")],
            f"{len(huge_pad):x}\r\n".encode() + huge_pad + b"\r\n0\r\n\r\n",
            content_length=False,
        ),
    ]
    for reply in replies:
        assert (reply.status, reply.code) == (413, "payload_too_large"), reply
        assert reply.headers.get(DECISION)
    ids = [reply.headers[DECISION] for reply in replies]
    rows = await pg_pool.fetch("SELECT decision_id::text, verdict, codes FROM risk_decisions")
    assert sorted((r["decision_id"], r["verdict"], list(r["codes"])) for r in rows) == sorted(
        (i, "reject", ["payload_too_large"]) for i in ids
    )
    assert paper_broker.book.received_orders() == []
