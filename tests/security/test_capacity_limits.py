"""Capacity the attacker cannot take (issue 8, item 2), one mechanism at a time: the order
path's own broker connections, "not sent" when no connection comes, the request deadlines,
the idle keep-alive limit and the connection limits that answer 503.

The gatekeeper runs in the test's process in front of the paper broker; clients that must be
slow on purpose are raw sockets (tests/security/capacity.py).
"""

from __future__ import annotations

import asyncio
import json
import resource
import time
from typing import Any

import aiohttp
import asyncpg
import pytest
from pydantic import ValidationError

from gatekeeper.settings import ProxySettings, Settings
from gatekeeper.web.connection_limits import (
    REFUSAL_LINGER_SECONDS,
    RESERVED_FDS,
    connection_limits,
)
from tests.fixtures.gate import make_settings, start_gatekeeper
from tests.fixtures.orders import Bot, order, protect, received_count
from tests.security.capacity import (
    ORDER_PATH,
    body_of,
    connect,
    read_until_closed,
    slow_connection,
    status_of,
)

# Deadlines used here, and how late a close may come on a busy 2-core machine.
LIMIT = 1.0
SLACK = 1.5


def with_risk(settings: Settings, **risk: Any) -> Settings:
    return settings.model_copy(update={"risk": settings.risk.model_copy(update=risk)})


async def _arrived(paper_broker: Any, method: str, raw_path: str, within: float = 10.0) -> None:
    """Until the broker has received this request (logged as it arrives, before any fault
    holds it)."""
    deadline = time.monotonic() + within
    while not any(
        (seen.method, seen.raw_path) == (method, raw_path)
        for seen in paper_broker.book.seen_requests()
    ):
        assert time.monotonic() < deadline, f"{method} {raw_path} never reached the broker"
        await asyncio.sleep(0.01)


async def _get_status(session: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> int:
    async with session.get(url, headers=headers) as response:
        await response.read()
        return response.status


async def test_passthrough_pool_exhaustion_cannot_starve_orders(
    paper_broker: Any, paper_auth: dict[str, str], database_url: str, redis_url: str
) -> None:
    settings = make_settings(
        paper_broker.url, database_url, redis_url, max_connections=2, order_max_connections=4
    )
    paper_broker.book.add_fault("/customers/me", delay_seconds=3, method="GET", times=2)
    async with start_gatekeeper(settings) as gate, aiohttp.ClientSession() as session:
        bot = Bot(gate.proxy_url, paper_auth, session, paper_broker.account_number)
        hogs = [
            asyncio.ensure_future(
                _get_status(session, gate.proxy_url + "/customers/me", paper_auth)
            )
            for _ in range(2)
        ]
        await asyncio.sleep(0.5)  # both pass-through connections are now busy
        # A pass-through read now waits for one of them.
        balances = f"{gate.proxy_url}/accounts/{bot.account}/balances"
        probe = asyncio.ensure_future(_get_status(session, balances, paper_auth))
        done, _ = await asyncio.wait([probe], timeout=1.0)
        starved = not done
        started = time.monotonic()
        placed = await bot.place(order("AAPL", 1, "100.00"))
        latency = time.monotonic() - started
        assert await asyncio.gather(*hogs, probe) == [200, 200, 200]
    print(f"\norder with the pass-through pool exhausted: {placed.status} in {latency:.3f}s")
    assert starved, "the pass-through pool should have been exhausted"
    assert placed.status == 201, placed.body
    assert latency < 2.0
    assert received_count(paper_broker.book, paper_broker.account_number) == 1


async def test_no_free_connection_for_an_order_is_not_sent_and_not_counted(
    paper_broker: Any,
    paper_auth: dict[str, str],
    database_url: str,
    redis_url: str,
    pg_pool: asyncpg.Pool,
) -> None:
    a, b = paper_broker.account_number, paper_broker.cash_account_number
    await protect(pg_pool, b, max_daily_trades=1)
    settings = make_settings(
        paper_broker.url,
        database_url,
        redis_url,
        order_max_connections=1,
        connect_timeout_seconds=1.0,
        total_timeout_seconds=10.0,
    )
    # B's state stays cached (as in the issue): its order goes straight to forwarding.
    settings = with_risk(
        settings, state_ttl_seconds=30.0, max_state_age_seconds=60.0, quote_ttl_seconds=30.0
    )
    async with start_gatekeeper(settings) as gate, aiohttp.ClientSession() as session:
        bot_a = Bot(gate.proxy_url, paper_auth, session, a)
        bot_b = Bot(gate.proxy_url, paper_auth, session, b)
        assert (await bot_a.place(order("AAPL", 1, "100.00"), dry_run=True)).status < 300
        assert (await bot_b.place(order("SPY", 1, "400.00"), dry_run=True)).status < 300
        # A's order holds the order path's only broker connection for 3 s.
        paper_broker.book.add_fault(
            f"/accounts/{a}/orders", delay_seconds=3, method="POST", times=1
        )
        slow_a = asyncio.ensure_future(bot_a.place(order("AAPL", 1, "100.00")))
        await _arrived(paper_broker, "POST", f"/accounts/{a}/orders")  # A holds it from now
        started = time.monotonic()
        refused = await bot_b.place(order("SPY", 1, "400.00"))
        waited = time.monotonic() - started
        assert (await slow_a).status == 201
        outcomes = await pg_pool.fetch(
            "SELECT o.outcome FROM order_outcomes o JOIN risk_decisions d USING (decision_id)"
            " WHERE d.account_id = $1 AND d.route_kind = 'place'",
            b,
        )
        assert received_count(paper_broker.book, b) == 0
        # Not counted: B's limit of one trade a day still lets this one through.
        again = await bot_b.place(order("SPY", 1, "400.00"))
        async with session.get(gate.admin_url + "/metrics") as response:
            metrics = await response.text()
    print(f"\norder with no free broker connection: {refused.status} after {waited:.3f}s")
    assert refused.status == 502
    assert refused.body["error"]["code"] == "broker_unavailable"
    assert 0.9 < waited < 1.0 + SLACK
    assert [row["outcome"] for row in outcomes] == ["not_sent"]
    assert again.status == 201, again.body
    assert received_count(paper_broker.book, b) == 1
    assert 'gatekeeper_upstream_errors_total{kind="connect_timeout"} 1.0' in metrics


async def _silent(url: str) -> tuple[float, bytes]:
    reader, writer = await connect(url)
    started = time.monotonic()
    answer = await read_until_closed(reader)
    writer.close()
    return time.monotonic() - started, answer


async def _keep_alive_then_idle(url: str, headers: dict[str, str]) -> tuple[int | None, float]:
    reader, writer = await connect(url)
    auth = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    writer.write(f"GET /customers/me HTTP/1.1\r\nHost: gatekeeper\r\n{auth}\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    await reader.readexactly(length)
    answered = time.monotonic()
    rest = await read_until_closed(reader)
    writer.close()
    assert rest == b""
    return status_of(head), time.monotonic() - answered


async def _order_in_two_parts(url: str, headers: dict[str, str], account: str) -> int | None:
    body = (
        b'{"order-type": "Limit", "time-in-force": "Day", "price": "100.00", "price-effect":'
        b' "Debit", "legs": [{"instrument-type": "Equity", "symbol": "AAPL", "action":'
        b' "Buy to Open", "quantity": 1}]}'
    )
    auth = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    reader, writer = await connect(url)
    writer.write(
        f"POST /accounts/{account}/orders HTTP/1.1\r\nHost: gatekeeper\r\n{auth}"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n".encode()
        + body[:40]
    )
    await asyncio.sleep(LIMIT / 2)  # slow, but within the body deadline
    writer.write(body[40:])
    answer = await read_until_closed(reader)
    writer.close()
    return status_of(answer)


async def test_slow_heads_and_bodies_are_cut_off_and_idle_connections_closed(
    paper_broker: Any,
    paper_auth: dict[str, str],
    database_url: str,
    redis_url: str,
    pg_pool: asyncpg.Pool,
) -> None:
    settings = make_settings(
        paper_broker.url,
        database_url,
        redis_url,
        request_head_timeout_seconds=LIMIT,
        request_body_timeout_seconds=LIMIT,
        keepalive_timeout_seconds=LIMIT,
    )
    async with start_gatekeeper(settings) as gate:
        url = gate.proxy_url
        silent, head, body_order, body_passthrough, idle, in_time = await asyncio.gather(
            _silent(url),
            slow_connection(url, "head", "127.0.0.1", 0.2),
            slow_connection(url, "body_order", "127.0.0.1", 0.2),
            slow_connection(url, "body_passthrough", "127.0.0.1", 0.2),
            _keep_alive_then_idle(url, paper_auth),
            _order_in_two_parts(url, paper_auth, paper_broker.account_number),
        )
        admin_silent = await _silent(gate.admin_url)
        rows = await pg_pool.fetch(
            "SELECT verdict, codes FROM risk_decisions WHERE 'request_timeout' = ANY(codes)"
        )
        # A close is counted as the listener lets the connection go, which the client may
        # see first: the counters get a moment.
        deadline = time.monotonic() + 3
        async with aiohttp.ClientSession() as session:
            while True:
                async with session.get(gate.admin_url + "/metrics") as response:
                    metrics = await response.text()
                wanted = ('reason="head_timeout"', 'reason="body_timeout"')
                if all(w in metrics for w in wanted) or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.05)
    print(
        f"\nclosed after: silent {silent[0]:.2f}s, slow head {head.lifetime:.2f}s, slow order"
        f" body {body_order.lifetime:.2f}s ({body_order.status}), slow pass-through body"
        f" {body_passthrough.lifetime:.2f}s ({body_passthrough.status}), idle keep-alive"
        f" {idle[1]:.2f}s, admin silent {admin_silent[0]:.2f}s; order in time: {in_time}"
    )
    # A head that never completes: closed without an answer.
    for lifetime, answer in (silent, admin_silent, (head.lifetime, b"")):
        assert LIMIT - 0.1 < lifetime < LIMIT + SLACK
        assert answer == b""
    assert head.status is None
    # A body that never completes: 408 in TastyTrade's envelope, then closed.
    for slow in (body_order, body_passthrough):
        assert slow.status == 408
        assert LIMIT - 0.1 < slow.lifetime < LIMIT + SLACK
    assert [(row["verdict"], list(row["codes"])) for row in rows] == [
        ("reject", ["request_timeout"])
    ]
    # An idle keep-alive connection: closed after keepalive_timeout_seconds.
    assert idle[0] == 200
    assert LIMIT - 0.1 < idle[1] < LIMIT + SLACK
    # A body that is slow but in time is not cut off.
    assert in_time == 201
    for reason in ("head_timeout", "body_timeout"):
        assert f'listener="proxy",reason="{reason}"' in metrics, [
            line for line in metrics.splitlines() if "closed" in line and "#" not in line
        ]


async def _refused(url: str, source: str) -> tuple[int | None, str]:
    reader, writer = await connect(url, source)
    writer.write(b"GET /customers/me HTTP/1.1\r\nHost: gatekeeper\r\n\r\n")
    answer = await read_until_closed(reader)
    writer.close()
    code = body_of(answer)["error"]["code"] if status_of(answer) == 503 else ""
    assert b"\r\nConnection: close\r\n" in answer or status_of(answer) != 503
    return status_of(answer), code


async def _answered(url: str, source: str, path: str) -> int | None:
    reader, writer = await connect(url, source)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: gatekeeper\r\nConnection: close\r\n\r\n".encode())
    answer = await read_until_closed(reader)
    writer.close()
    return status_of(answer)


async def test_connection_limits_per_address_and_in_total_answer_503(
    paper_broker: Any, database_url: str, redis_url: str
) -> None:
    settings = make_settings(
        paper_broker.url,
        database_url,
        redis_url,
        max_client_connections=4,
        max_client_connections_per_address=2,
    )
    async with start_gatekeeper(settings) as gate:
        url = gate.proxy_url
        held = [await connect(url, "127.0.0.1") for _ in range(2)]
        await asyncio.sleep(0.1)
        per_address = await _refused(url, "127.0.0.1")
        held += [await connect(url, "127.0.0.2") for _ in range(2)]
        await asyncio.sleep(0.1)
        total = await _refused(url, "127.0.0.3")
        # The operators' listener has limits of its own: reachable while the proxy is full.
        admin = await _answered(gate.admin_url, "127.0.0.3", "/healthz")
        held.pop(0)[1].close()
        await asyncio.sleep(0.2)
        after_one_closed = await _answered(url, "127.0.0.3", "/api-quote-tokens")
        for _, writer in held:
            writer.close()
        # A close is counted as the listener lets the connection go, which the client may
        # see first: the counters get a moment.
        deadline = time.monotonic() + 3
        async with aiohttp.ClientSession() as session:
            while True:
                async with session.get(gate.admin_url + "/metrics") as response:
                    metrics = await response.text()
                wanted = ('reason="head_timeout"', 'reason="body_timeout"')
                if all(w in metrics for w in wanted) or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.05)
    print(f"\nper address: {per_address}, in total: {total}, admin: {admin}")
    assert per_address == (503, "too_many_connections_per_address")
    assert total == (503, "too_many_connections")
    assert admin == 200
    assert after_one_closed not in (None, 503)
    assert (
        'gatekeeper_client_connections_closed_total{listener="proxy",'
        'reason="too_many_connections_per_address"} 1.0'
    ) in metrics
    assert (
        'gatekeeper_client_connections_closed_total{listener="proxy",'
        'reason="too_many_connections"} 1.0'
    ) in metrics


async def _refused_order(
    url: str, source: str, account: str, auth: dict[str, str], padding: int
) -> tuple[float, bytes]:
    """An order sent whole, head and body at once, on a connection the limits refuse; how
    long until the gatekeeper closed it, and everything it answered."""
    body = json.dumps({**order(), "padding": "x" * padding}).encode()
    head = (
        f"POST /accounts/{account}/orders HTTP/1.1\r\nHost: gatekeeper\r\n"
        f"Authorization: {auth['Authorization']}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    started = time.monotonic()
    reader, writer = await connect(url, source)
    writer.write(head + body)
    answer = await read_until_closed(reader)
    writer.close()
    return time.monotonic() - started, answer


async def test_an_order_on_a_refused_connection_is_answered_with_its_decision_row(
    paper_broker: Any,
    paper_auth: dict[str, str],
    database_url: str,
    redis_url: str,
    pg_pool: asyncpg.Pool,
) -> None:
    # Every answer on an order route has a decision row (issue 11, I2), the 503 of a
    # connection beyond the limits too; the order is never forwarded. A body of 300 KB
    # (many TCP segments, still arriving as the answer is written) does not cost the answer.
    account = paper_broker.account_number
    await protect(pg_pool, account)
    settings = make_settings(
        paper_broker.url,
        database_url,
        redis_url,
        max_client_connections=2,
        max_client_connections_per_address=1,
    )
    async with start_gatekeeper(settings) as gate:
        url = gate.proxy_url
        held = [await connect(url, "127.0.0.1")]
        await asyncio.sleep(0.1)
        per_address = await _refused_order(url, "127.0.0.1", account, paper_auth, 300_000)
        held.append(await connect(url, "127.0.0.2"))
        await asyncio.sleep(0.1)
        total = await _refused_order(url, "127.0.0.3", account, paper_auth, 100)
        passthrough = await _refused(url, "127.0.0.3")
        # A refused connection that sends nothing is closed within the linger time, unanswered.
        started = time.monotonic()
        reader, writer = await connect(url, "127.0.0.3")
        silent = await read_until_closed(reader)
        silent_for = time.monotonic() - started
        writer.close()
        for _, held_writer in held:
            held_writer.close()
        rows = await pg_pool.fetch(
            "SELECT decision_id::text AS id, verdict, codes, route_kind FROM risk_decisions"
            " WHERE account_id = $1 ORDER BY decided_at",
            account,
        )
    print(f"\nrefused orders answered in {per_address[0]:.3f} s and {total[0]:.3f} s; rows {rows}")
    answers = {}
    for took, answer in (per_address, total):
        assert status_of(answer) == 503, answer[:200]
        assert b"\r\nConnection: close\r\n" in answer
        assert b"\r\nRetry-After: 1\r\n" in answer
        assert took < REFUSAL_LINGER_SECONDS
        decision = answer.split(b"X-Gatekeeper-Decision-Id: ")[1].split(b"\r\n")[0].decode()
        answers[decision] = body_of(answer)["error"]["code"]
    assert {row["id"]: (row["verdict"], list(row["codes"]), row["route_kind"]) for row in rows} == {
        decision: ("reject" if code.endswith("per_address") else "error", [code], "place")
        for decision, code in answers.items()
    }
    assert sorted(answers.values()) == ["too_many_connections", "too_many_connections_per_address"]
    assert received_count(paper_broker.book, account) == 0
    # Any other route: the plain 503, no row (above: only the two orders' rows).
    assert passthrough == (503, "too_many_connections")
    assert silent == b""
    assert silent_for < REFUSAL_LINGER_SECONDS + SLACK


async def test_order_route_body_deadline_answer_names_the_decision(
    paper_broker: Any, database_url: str, redis_url: str
) -> None:
    settings = make_settings(
        paper_broker.url, database_url, redis_url, request_body_timeout_seconds=LIMIT
    )
    async with start_gatekeeper(settings) as gate:
        reader, writer = await connect(gate.proxy_url)
        writer.write(
            f"POST {ORDER_PATH} HTTP/1.1\r\nHost: gatekeeper\r\nContent-Type: application/json"
            "\r\nContent-Length: 10\r\n\r\n{".encode()
        )
        answer = await read_until_closed(reader)
        writer.close()
    assert status_of(answer) == 408
    assert b"X-Gatekeeper-Decision-Id: " in answer
    assert body_of(answer)["error"]["code"] == "request_timeout"


def test_a_request_that_got_no_connection_always_times_out_as_not_sent() -> None:
    # The total timeout must not end the wait for a connection first: that TimeoutError could
    # not be told from one after sending.
    with pytest.raises(ValidationError, match="total_timeout_seconds"):
        ProxySettings(connect_timeout_seconds=5.0, total_timeout_seconds=5.5)


def test_client_connections_are_capped_below_the_file_descriptor_limit() -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    proxy = ProxySettings(
        max_client_connections=1_000_000, max_client_connections_per_address=1_000_000
    )
    limits = connection_limits(proxy)
    upstream = proxy.max_connections + proxy.order_max_connections
    assert 2 * limits.max_total + upstream + RESERVED_FDS <= soft
    assert limits.max_per_address == limits.max_total
