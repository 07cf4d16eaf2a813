"""Issue 8, item 7: ``Connection: Authorization`` made the proxy read the account state with
the bot's token and then forward the order without it (a proxy drops every field named in
``Connection``). A request whose ``Connection`` names a credential or a field the gatekeeper
reads (``gatekeeper.web.paths.NEEDED_FIELDS``) is now refused with 400, with a decision row on
order routes; other fields named there are still dropped, as RFC 9110 says. Both HTTP
parsers, raw sockets.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import asyncpg
import pytest

from tests.fixtures.orders import order
from tests.fixtures.paper import PaperBroker
from tests.security.edge import PARSERS, raw_request, recording_upstream, served_gatekeeper

DECISION = "X-Gatekeeper-Decision-Id"
NAMING_END_TO_END = [
    [("Connection", "close, Authorization")],
    [("Connection", "close"), ("Connection", "authorization")],
    [("Connection", "close,Content-Type")],
    [("Connection", "close, Content-Length")],
    [("Connection", "close, Accept-Version")],
    [("Connection", "close, User-Agent")],
    [("Connection", "close, Content-Encoding")],
    [("Connection", "close, Cookie")],
    [("Connection", "close, X-Tastyworks-OTP")],
]


@pytest.fixture(params=PARSERS)
async def proxy(
    request: pytest.FixtureRequest, paper_broker: PaperBroker, database_url: str, redis_url: str
) -> AsyncIterator[str]:
    async with served_gatekeeper(request.param, paper_broker.url, database_url, redis_url) as url:
        yield url


async def test_an_order_naming_its_credential_in_connection_is_refused_with_a_decision(
    proxy: str, paper_broker: PaperBroker, paper_auth: dict[str, str], pg_pool: asyncpg.Pool
) -> None:
    body = json.dumps(order("AAPL", 1, "150.00")).encode()
    base = [
        ("Authorization", paper_auth["Authorization"]),
        ("Content-Type", "application/json"),
        ("Accept-Version", "20251101"),
        ("User-Agent", "bot/1.0"),
    ]
    for connection in NAMING_END_TO_END:
        target = f"/accounts/{paper_broker.account_number}/orders"
        reply = await raw_request(proxy, "POST", target, base + connection, body)
        assert (reply.status, reply.code) == (400, "invalid_connection_header"), reply
        assert reply.headers.get(DECISION)
    assert not [s for s in paper_broker.book.seen_requests() if "/orders" in s.raw_path]
    rows = await pg_pool.fetch("SELECT verdict, codes FROM risk_decisions")
    assert [(r["verdict"], list(r["codes"])) for r in rows] == [
        ("reject", ["invalid_connection_header"])
    ] * len(NAMING_END_TO_END)


async def test_pass_through_naming_an_end_to_end_field_is_refused_and_options_are_not(
    database_url: str, redis_url: str
) -> None:
    for parser in PARSERS:
        async with (
            recording_upstream() as upstream,
            served_gatekeeper(parser, upstream.url, database_url, redis_url) as url,
        ):
            base = [("Authorization", "Bearer kept"), ("Content-Type", "application/json")]
            for connection in NAMING_END_TO_END:
                reply = await raw_request(url, "GET", "/customers/me", base + connection)
                assert (reply.status, reply.code) == (400, "invalid_connection_header"), reply
            assert upstream.seen == [], parser
            options = [
                ("Connection", "close, TE, Keep-Alive, X-Private-Hop"),
                ("TE", "trailers"),
                ("X-Private-Hop", "dropped"),
            ]
            reply = await raw_request(url, "GET", "/customers/me", base + options)
            assert reply.status == 200, (parser, reply)
        (seen,) = upstream.seen
        assert seen.headers["Authorization"] == "Bearer kept"
        assert seen.headers["Content-Type"] == "application/json"
        assert "X-Private-Hop" not in seen.headers
