"""Bounded waiting (issue 11, item 3): an order that waited past its deadline anywhere before
it could be forwarded — the kernel's accept queue while the event loop was busy, the broker's
account state, the account lock — is refused 503 ``deadline_exceeded`` with its decision row
and never forwarded; beyond ``risk.order_max_in_flight`` orders in progress a new one is
refused 503 ``overloaded`` at once, with its row too."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

import aiohttp
import asyncpg
import pytest

from gatekeeper.adapters.account_lock import lock_account
from gatekeeper.settings import Settings
from tests.fixtures.gate import Gate, make_settings, start_gatekeeper
from tests.fixtures.orders import Answer, Bot, order, protect, received_count

DEADLINE = 2.0


@dataclass
class Deadlined:
    bot: Bot
    gate: Gate
    pool: asyncpg.Pool
    book: Any


def _with_risk(settings: Settings, **risk: Any) -> Settings:
    return settings.model_copy(update={"risk": settings.risk.model_copy(update=risk)})


@pytest.fixture
def risk_settings() -> dict[str, Any]:
    """Risk settings of the test's gatekeeper beyond DEADLINE (a test parametrizes it)."""
    return {}


@pytest.fixture
async def deadlined(
    risk_settings: dict[str, Any],
    paper_broker: Any,
    paper_auth: dict[str, str],
    database_url: str,
    redis_url: str,
) -> AsyncIterator[Deadlined]:
    """A gatekeeper whose orders have DEADLINE seconds (and ``risk_settings``), a protected
    account, and a pool on its database."""
    risk = {"order_deadline_seconds": DEADLINE, **risk_settings}
    settings = _with_risk(make_settings(paper_broker.url, database_url, redis_url), **risk)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=3)
    await protect(pool, paper_broker.account_number, max_daily_trades=100)
    try:
        async with start_gatekeeper(settings) as gate, aiohttp.ClientSession() as session:
            bot = Bot(gate.proxy_url, paper_auth, session, paper_broker.account_number)
            yield Deadlined(bot, gate, pool, paper_broker.book)
    finally:
        await pool.close()


async def _row(pool: asyncpg.Pool, answer: Answer) -> asyncpg.Record:
    decision_id = UUID(answer.headers["X-Gatekeeper-Decision-Id"])
    row = await pool.fetchrow(
        "SELECT verdict, codes, trade_count FROM risk_decisions WHERE decision_id = $1",
        decision_id,
    )
    assert row is not None, "every answer has its decision row"
    return row


async def _assert_refused(d: Deadlined, answer: Answer, code: str) -> None:
    assert answer.status == 503, answer.body
    assert answer.body["error"]["code"] == code
    row = await _row(d.pool, answer)
    assert (row["verdict"], list(row["codes"]), row["trade_count"]) == ("error", [code], 0)
    assert received_count(d.book, d.bot.account) == 0


async def test_an_order_waiting_for_the_account_lock_past_its_deadline_is_refused(
    deadlined: Deadlined,
) -> None:
    d = deadlined
    assert (await d.bot.place(order("AAPL", 1, "150.00"), dry_run=True)).status < 300  # warm
    async with d.pool.acquire() as holder, holder.transaction():
        await lock_account(holder, d.bot.account)  # another replica deciding, stuck
        started = time.perf_counter()
        answer = await d.bot.place(order("AAPL", 1, "150.00"))
        waited = time.perf_counter() - started
    await _assert_refused(d, answer, "deadline_exceeded")
    assert DEADLINE * 0.5 < waited < DEADLINE + 2.0, waited  # waited its deadline, no longer
    # The lock is free again: the next order goes through.
    assert (await d.bot.place(order("AAPL", 1, "150.00"))).status == 201
    assert received_count(d.book, d.bot.account) == 1


@pytest.mark.stalls_event_loop
async def test_an_order_that_waited_in_the_accept_queue_past_its_deadline_is_refused(
    deadlined: Deadlined,
) -> None:
    """The event loop is blocked (a CPU-bound stall) while a bot connects and sends: the
    connection and its bytes wait in the kernel; when the loop comes back the order is
    already past its deadline."""
    d = deadlined
    assert (await d.bot.place(order("AAPL", 1, "150.00"), dry_run=True)).status < 300  # warm
    body = json.dumps(order("AAPL", 1, "150.00")).encode()
    url = urlsplit(d.gate.proxy_url)
    head = (
        f"POST /accounts/{d.bot.account}/orders HTTP/1.1\r\nHost: {url.netloc}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        f"Authorization: {d.bot.auth['Authorization']}\r\nConnection: close\r\n\r\n"
    ).encode()
    sent = asyncio.Event()
    loop = asyncio.get_running_loop()

    def send() -> bytes:
        with socket.create_connection((url.hostname, url.port), timeout=15) as sock:
            sock.sendall(head + body)
            loop.call_soon_threadsafe(sent.set)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
            return b"".join(chunks)

    reply = loop.run_in_executor(None, send)
    time.sleep(DEADLINE + 0.5)  # noqa: ASYNC251 - the stall under test: the loop is blocked
    await sent.wait()
    raw = await reply
    status_line, _, rest = raw.partition(b"\r\n")
    assert b" 503 " in status_line, raw[:200]
    headers_raw, _, payload = rest.partition(b"\r\n\r\n")
    assert json.loads(payload)["error"]["code"] == "deadline_exceeded"
    decision_id = next(
        line.split(b":", 1)[1].strip().decode()
        for line in headers_raw.split(b"\r\n")
        if line.lower().startswith(b"x-gatekeeper-decision-id:")
    )
    row = await d.pool.fetchrow(
        "SELECT verdict, codes FROM risk_decisions WHERE decision_id = $1", UUID(decision_id)
    )
    assert row is not None
    assert list(row["codes"]) == ["deadline_exceeded"]
    assert received_count(d.book, d.bot.account) == 0


async def test_an_order_whose_account_state_came_too_late_is_refused(deadlined: Deadlined) -> None:
    d = deadlined
    d.book.add_fault(f"/accounts/{d.bot.account}/balances", delay_seconds=DEADLINE + 0.5)
    answer = await d.bot.place(order("AAPL", 1, "150.00"))
    await _assert_refused(d, answer, "deadline_exceeded")


@pytest.mark.parametrize(
    "risk_settings", [{"order_max_in_flight": 1, "order_deadline_seconds": 5.0}]
)
async def test_orders_beyond_the_in_flight_limit_are_refused_at_once(deadlined: Deadlined) -> None:
    d = deadlined
    assert (await d.bot.place(order("AAPL", 1, "150.00"), dry_run=True)).status < 300  # warm
    async with d.pool.acquire() as holder:
        transaction = holder.transaction()
        await transaction.start()
        await lock_account(holder, d.bot.account)
        first = asyncio.create_task(d.bot.place(order("AAPL", 1, "150.00")))
        await _until_waiting_for_the_lock(d.pool)
        started = time.perf_counter()
        second = await d.bot.place(order("AAPL", 1, "150.00"))
        refused_in = time.perf_counter() - started
        # Checked while the first still waits: once the lock is free it reaches the broker.
        await _assert_refused(d, second, "overloaded")
        await transaction.rollback()
    assert refused_in < 2.5, refused_in  # at once, not after waiting its turn (5 s)
    assert (await first).status == 201  # the one in progress went on
    assert received_count(d.book, d.bot.account) == 1


async def _until_waiting_for_the_lock(pool: asyncpg.Pool, within: float = 10.0) -> None:
    deadline = time.perf_counter() + within
    while time.perf_counter() < deadline:
        waiting = await pool.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        )
        if waiting:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the first order never waited for the account lock")


# The gatekeeper's database pool (gatekeeper.web.server.open_backends): an order holds its
# connection until it was sent (its forwarding locks).
POOL_SIZE = 24


# The orders that take the pool's connections pass the account lock one by one: about 1 s for
# all 24 on a quiet machine, three times that on a slow day; each must reach the broker within
# its deadline.
FORWARD_DEADLINE = 8.0


@pytest.mark.parametrize("risk_settings", [{"order_deadline_seconds": FORWARD_DEADLINE}])
async def test_orders_refused_while_every_connection_is_held_still_get_their_rows(
    deadlined: Deadlined,
) -> None:
    # Every connection of the pool is held by an order the broker is slow to answer; the
    # orders behind them wait for one past their deadline. Their refusals are decisions like
    # any other: each answer's row is committed before it is sent, though no connection of
    # the pool comes free before the broker answers (refusal rows have one of their own).
    d = deadlined
    assert (await d.bot.place(order("AAPL", 1, "150.00"), dry_run=True)).status < 300  # warm
    target = f"/accounts/{d.bot.account}/orders"
    d.book.add_fault(target, delay_seconds=FORWARD_DEADLINE + 1.5, method="POST",
                     times=POOL_SIZE, after=True)  # fmt: skip
    answers = await asyncio.gather(
        *(d.bot.place(order("AAPL", 1, "150.00")) for _ in range(POOL_SIZE + 8))
    )
    statuses = sorted(a.status for a in answers)
    assert statuses == [201] * POOL_SIZE + [503] * 8, statuses
    for answer in answers:
        row = await _row(d.pool, answer)
        if answer.status == 503:
            assert answer.body["error"]["code"] == "deadline_exceeded"
            assert (row["verdict"], list(row["codes"])) == ("error", ["deadline_exceeded"])
    assert received_count(d.book, d.bot.account) == POOL_SIZE
