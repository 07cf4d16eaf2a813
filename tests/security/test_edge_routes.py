"""Issue 8, items 5 and 10 (proxy half): routes the gatekeeper does not know are not forwarded.

- Item 5: ``POST /accounts/X/orders.json``, ``orders+``, ``orders~``, full-width or long-s
  look-alikes and unknown sub-routes reached the broker without a decision; a broker whose
  router strips a format suffix or folds look-alikes would have placed them unchecked. Under
  ``/accounts/`` every method but GET/HEAD must match a known route (checked or cancel);
  anything else is 422 ``unsupported_order_route`` with a decision row. ``X-Original-URL``,
  ``X-Rewrite-URL`` and ``X-Forwarded-Host`` (and their kin) never reach the broker.
- Item 10: ``PUT /__paper/accounts/X/cash`` through the proxy set a bot's cash. A path with a
  segment starting with ``__`` (the first one above all), however encoded, is 404 and never
  forwarded.

Both HTTP parsers, raw sockets (a client library would normalise these targets).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from decimal import Decimal

import asyncpg
import pytest

from tests.fixtures.orders import order
from tests.fixtures.paper import PaperBroker
from tests.security.edge import PARSERS, raw_request, recording_upstream, served_gatekeeper

DECISION = "X-Gatekeeper-Decision-Id"
A = "/accounts/5WT00001"
FULLWIDTH_ORDERS = "%EF%BD%8F%EF%BD%92%EF%BD%84%EF%BD%85%EF%BD%92%EF%BD%93"  # full-width 'orders'
LONG_S = "%C5%BF"  # the long s U+017F, which upper-cases to S

UNKNOWN_ROUTES = [
    ("POST", f"{A}/orders.json"),
    ("POST", f"{A}/orders+"),
    ("POST", f"{A}/orders~"),
    ("POST", f"{A}/orders%7E"),
    ("POST", f"{A}/{FULLWIDTH_ORDERS}"),
    ("POST", f"{A}/order{LONG_S}"),
    ("POST", f"{A}/ORDERS.json"),
    ("POST", f"{A}/orders;format=json"),
    ("POST", f"{A}/orders/dry-run.json"),
    ("POST", f"{A}/complex-orders.json"),
    ("POST", f"{A}/orders/100001/reconfirm"),
    ("POST", f"{A}/transfers"),
    ("POST", f"{A}/positions"),
    ("PUT", f"{A}/orders/100001.json"),
    ("PATCH", f"{A}/complex-orders/5"),
    ("DELETE", f"{A}/orders/"),
    ("DELETE", f"{A}/orders/100001.json"),
    ("OPTIONS", f"{A}/orders"),
    ("PROPFIND", f"{A}/orders"),
    ("POST", "/Accounts/5WT00001/orders.json"),
    ("POST", "/%61ccounts/5WT00001/orders.json"),
    ("POST", "/%EF%BD%81ccounts/5WT00001/orders"),
    ("POST", f"/account{LONG_S}/5WT00001/orders.json"),
    ("POST", "/accounts.json/5WT00001/orders"),
    ("POST", "/customers/me/orders.json"),
]


@pytest.fixture(params=PARSERS)
async def proxy(
    request: pytest.FixtureRequest, paper_broker: PaperBroker, database_url: str, redis_url: str
) -> AsyncIterator[str]:
    async with served_gatekeeper(request.param, paper_broker.url, database_url, redis_url) as url:
        yield url


async def test_unknown_mutating_routes_are_refused_with_a_decision(
    proxy: str, paper_broker: PaperBroker, paper_auth: dict[str, str], pg_pool: asyncpg.Pool
) -> None:
    body = json.dumps(order("AAPL", 1000, "150.00")).encode()
    headers = [("Authorization", paper_auth["Authorization"]), ("Content-Type", "application/json")]
    seen_before = paper_broker.book.seen_requests()
    for method, target in UNKNOWN_ROUTES:
        reply = await raw_request(proxy, method, target, headers, body)
        assert (reply.status, reply.code) == (422, "unsupported_order_route"), (target, reply)
        assert reply.headers.get(DECISION), target
    assert paper_broker.book.seen_requests() == seen_before
    rows = await pg_pool.fetch("SELECT verdict, codes FROM risk_decisions")
    assert [(r["verdict"], list(r["codes"])) for r in rows] == [
        ("reject", ["unsupported_order_route"])
    ] * len(UNKNOWN_ROUTES)


async def test_cancels_and_reads_still_pass(
    proxy: str, paper_broker: PaperBroker, paper_auth: dict[str, str], pg_pool: asyncpg.Pool
) -> None:
    auth = [("Authorization", paper_auth["Authorization"])]
    json_auth = [*auth, ("Content-Type", "application/json")]
    placed = await raw_request(
        proxy, "POST", f"{A}/orders", json_auth, json.dumps(order("AAPL", 1, "100.00")).encode()
    )
    assert placed.status == 201, placed
    order_id = json.loads(placed.body)["data"]["order"]["id"]
    for method, target, status in [
        ("GET", f"{A}/orders.json", 404),  # a read the broker does not know: relayed
        ("HEAD", f"{A}/orders/live", 200),
        ("DELETE", f"{A}/orders/{order_id}", 200),
        ("DELETE", f"{A}/complex-orders/999999", 404),
    ]:
        reply = await raw_request(proxy, method, target, auth)
        assert reply.status == status, (target, reply)
        assert DECISION not in reply.headers
    seen = [(s.method, s.raw_path) for s in paper_broker.book.seen_requests()]
    assert ("DELETE", f"{A}/orders/{order_id}") in seen
    assert ("DELETE", f"{A}/complex-orders/999999") in seen


PAPER_CONTROLS = [
    ("PUT", "/__paper/accounts/5WT00001/cash"),
    ("PUT", "/%5F%5Fpaper/accounts/5WT00001/cash"),
    ("PUT", "/_%5fpaper/accounts/5WT00001/cash"),
    ("PUT", "/%255F%255Fpaper/accounts/5WT00001/cash"),
    ("PUT", "/%EF%BC%BF%EF%BC%BFpaper/accounts/5WT00001/cash"),  # full-width low lines
    ("GET", "/__paper/quotes"),
    ("DELETE", "/__paper/faults"),
    ("GET", "/__paper"),
    ("GET", "/;/__paper/quotes"),
]


async def test_paper_controls_are_never_reachable_through_the_proxy(
    proxy: str, paper_broker: PaperBroker
) -> None:
    account = paper_broker.book.accounts[paper_broker.account_number]
    cash = account.cash
    headers = [(name, value) for name, value in paper_broker.control_headers.items()] + [
        ("Content-Type", "application/json")
    ]
    for method, target in PAPER_CONTROLS:
        body = b'{"cash": "100000000.00"}' if method == "PUT" else b""
        reply = await raw_request(proxy, method, target, headers, body)
        assert (reply.status, reply.code) == (404, "not_found"), (target, reply)
    assert account.cash == cash != Decimal("100000000.00")


async def test_nothing_under_a_double_underscore_prefix_is_forwarded(
    database_url: str, redis_url: str
) -> None:
    for parser in PARSERS:
        async with (
            recording_upstream() as upstream,
            served_gatekeeper(parser, upstream.url, database_url, redis_url) as url,
        ):
            for method, target in PAPER_CONTROLS:
                reply = await raw_request(url, method, target)
                assert reply.status == 404, (parser, target, reply)
            assert upstream.seen == [], parser


async def test_url_and_host_override_headers_are_dropped(database_url: str, redis_url: str) -> None:
    overrides = [
        ("X-Original-URL", "/accounts/5WT00001/orders"),
        ("X-Rewrite-URL", "/accounts/5WT00001/orders"),
        ("X-Forwarded-Host", "evil.example"),
        ("X-Forwarded-Server", "evil.example"),
        ("X-Forwarded-Prefix", "/accounts/5WT00001/orders"),
        ("X-Host", "evil.example"),
        ("X-HTTP-Host-Override", "evil.example"),
        ("Forwarded", "for=203.0.113.9;host=evil.example"),
    ]
    for parser in PARSERS:
        async with (
            recording_upstream() as upstream,
            served_gatekeeper(parser, upstream.url, database_url, redis_url) as url,
        ):
            headers = [("Authorization", "Bearer kept"), *overrides]
            reply = await raw_request(url, "GET", "/customers/me", headers)
            assert reply.status == 200, (parser, reply)
        (seen,) = upstream.seen
        assert seen.raw_path == "/customers/me"
        assert seen.headers["Authorization"] == "Bearer kept"
        assert not [name for name, _ in overrides if name in seen.headers], (parser, seen.headers)
