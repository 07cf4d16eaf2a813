"""Issue 11, items 1 and 2: an order whose broker answer was lost is reconciled at the broker,
and a retried submission is never forwarded again (docs/order-path.md, "Retries and
duplicates" and "Unknown outcomes")."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import asyncpg
import pytest

from gatekeeper.checks import today_figures
from gatekeeper.settings import Settings
from tests.fixtures.gate import make_settings, start_gatekeeper
from tests.fixtures.orders import Bot, order, protect, received_count
from tests.processes import base_environment, free_ports, spawn_cli, wait_http

LATEST = (
    "SELECT outcome, broker_order_id, resolution FROM order_outcomes WHERE decision_id = $1::uuid"
    " ORDER BY id DESC LIMIT 1"
)


def _settings(paper_url: str, database_url: str, redis_url: str) -> Settings:
    settings = make_settings(paper_url, database_url, redis_url, read_timeout_seconds=1.0)
    risk = settings.risk.model_copy(
        update={
            "duplicate_window_seconds": 60.0,
            "reconcile_interval_seconds": 0.2,
            "reconcile_grace_seconds": 3.0,
            "reconcile_not_placed_after_seconds": 2.5,
        }
    )
    return settings.model_copy(update={"risk": risk})


@asynccontextmanager
async def _bots(
    paper_broker: Any, auth: dict[str, str], database_url: str, redis_url: str, replicas: int = 1
) -> AsyncIterator[list[Bot]]:
    settings = _settings(paper_broker.url, database_url, redis_url)
    async with aiohttp.ClientSession() as session:
        if replicas == 1:
            async with start_gatekeeper(settings) as gate:
                yield [Bot(gate.proxy_url, auth, session, paper_broker.account_number)]
        else:
            async with start_gatekeeper(settings) as one, start_gatekeeper(settings) as two:
                yield [
                    Bot(gate.proxy_url, auth, session, paper_broker.account_number)
                    for gate in (one, two)
                ]


async def _resolved(pool: asyncpg.Pool, decision_id: str, within: float = 10.0) -> Any:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        row = await pool.fetchrow(LATEST, decision_id)
        if row is not None and row["outcome"] != "unknown":
            return row
        await asyncio.sleep(0.05)
    raise AssertionError(f"decision {decision_id} not reconciled within {within}s")


async def _decided(pool: asyncpg.Pool) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if await pool.fetchval("SELECT count(*) FROM risk_decisions"):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("no decision")


async def _at_the_broker(book: Any, account: str, placed: bool) -> None:
    """Until the order's POST reached the broker (logged as it arrives, before a fault holds
    it) and, when ``placed``, the broker placed it (it does at once, before a fault that
    holds only its answer)."""
    deadline = time.monotonic() + 10
    post = ("POST", f"/accounts/{account}/orders")
    while time.monotonic() < deadline:
        arrived = any((seen.method, seen.raw_path) == post for seen in book.seen_requests())
        if arrived and (not placed or book.received_orders()):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the order did not reach the broker")


def _slow_after_placing(paper_broker: Any, seconds: float = 2.0) -> None:
    target = f"/accounts/{paper_broker.account_number}/orders"
    paper_broker.book.add_fault(target, delay_seconds=seconds, method="POST", times=1, after=True)


async def test_an_answer_lost_after_placing_is_reconciled_to_accepted(
    paper_broker: Any,
    paper_auth: dict[str, str],
    database_url: str,
    redis_url: str,
    pg_pool: asyncpg.Pool,
) -> None:
    await protect(pg_pool, paper_broker.account_number)
    async with _bots(paper_broker, paper_auth, database_url, redis_url) as (bot,):
        _slow_after_placing(paper_broker)
        started = time.monotonic()
        answer = await bot.place(order("AAPL", 1, "150.00"))
        assert answer.status == 504, answer.body
        decision_id = answer.headers["X-Gatekeeper-Decision-Id"]
        assert await pg_pool.fetchval(LATEST, decision_id) == "unknown"
        row = await _resolved(pg_pool, decision_id)
        lag = time.monotonic() - started - 2.0
    (entry,) = paper_broker.book.received_orders()
    assert row["outcome"] == "accepted"
    assert row["broker_order_id"] == str(entry.order_ids[0])
    assert row["resolution"] == "external_identifier"
    assert lag < 3.0  # within seconds of the broker answering (its answer took 2 s)


async def test_a_timeout_before_the_broker_placed_it_is_not_placed(
    paper_broker: Any,
    paper_auth: dict[str, str],
    database_url: str,
    redis_url: str,
    pg_pool: asyncpg.Pool,
) -> None:
    await protect(pg_pool, paper_broker.account_number)
    target = f"/accounts/{paper_broker.account_number}/orders"
    async with _bots(paper_broker, paper_auth, database_url, redis_url) as (bot,):
        paper_broker.book.add_fault(target, status=500, delay_seconds=2, method="POST", times=1)
        answer = await bot.place(order("AAPL", 1, "150.00"))
        assert answer.status == 504, answer.body
        decision_id = answer.headers["X-Gatekeeper-Decision-Id"]
        async with pg_pool.acquire() as conn:  # what the status route shows meanwhile
            today = await today_figures(conn, paper_broker.account_number, None)
        assert today is not None
        assert [o["decision_id"] for o in today.unresolved_orders] == [decision_id]
        assert today.trades_today == 1  # counted until resolved
        row = await _resolved(pg_pool, decision_id)
    assert row["outcome"] == "not_placed"
    assert received_count(paper_broker.book, paper_broker.account_number) == 0


async def test_a_bot_retrying_every_timeout_places_each_order_once(
    paper_broker: Any,
    paper_auth: dict[str, str],
    database_url: str,
    redis_url: str,
    pg_pool: asyncpg.Pool,
) -> None:
    await protect(pg_pool, paper_broker.account_number)
    bodies = [
        order("AAPL", 1, "150.00"),
        order("AAPL", 2, "150.00", **{"external-identifier": "bot7-000002"}),
        order("AAPL", 3, "150.00"),
    ]
    async with _bots(paper_broker, paper_auth, database_url, redis_url) as (bot,):
        for body in bodies:
            _slow_after_placing(paper_broker)
            statuses = []
            while True:  # the naive bot: resend the same body until it gets a 201
                answer = await bot.place(body)
                statuses.append(answer.status)
                if answer.status == 201:
                    break
                assert answer.status in (504, 409), answer.body
                await asyncio.sleep(0.3)
            assert statuses[0] == 504
            assert answer.headers["X-Gatekeeper-Duplicate-Of"]
            assert answer.body["data"]["order"]["size"] == body["legs"][0]["quantity"]
    received = paper_broker.book.received_orders()
    assert [entry.body["legs"][0]["quantity"] for entry in received] == [1, 2, 3]
    trades = await pg_pool.fetchval(
        "SELECT sum(trade_count) FROM risk_decisions WHERE verdict = 'allow'"
    )
    assert trades == 3  # the retries have rows of their own, counted as no trade
    duplicates = await pg_pool.fetchval(
        "SELECT count(*) FROM risk_decisions WHERE codes = '{duplicate_order}'"
        " AND detail ? 'duplicate_of'"
    )
    assert duplicates >= 3


async def test_two_replicas_racing_one_retry_forward_it_once(
    paper_broker: Any,
    paper_auth: dict[str, str],
    database_url: str,
    redis_url: str,
    pg_pool: asyncpg.Pool,
) -> None:
    await protect(pg_pool, paper_broker.account_number)
    body = order("AAPL", 1, "150.00", **{"external-identifier": "bot7-race"})
    async with _bots(paper_broker, paper_auth, database_url, redis_url, replicas=2) as bots:
        answers = await asyncio.gather(*(bot.place(body) for bot in bots for _ in range(3)))
    assert received_count(paper_broker.book, paper_broker.account_number) == 1
    assert sorted(a.status for a in answers)[0] == 201
    assert all(a.status in (201, 409) for a in answers)
    assert sum(1 for a in answers if "X-Gatekeeper-Duplicate-Of" not in a.headers) == 1


@pytest.mark.parametrize(("placed", "outcome"), [(True, "accepted"), (False, "not_placed")])
async def test_a_killed_gatekeeper_s_order_is_resolved_after_restart(
    placed: bool,
    outcome: str,
    paper_broker: Any,
    paper_auth: dict[str, str],
    database_url: str,
    redis_url: str,
    pg_pool: asyncpg.Pool,
) -> None:
    await protect(pg_pool, paper_broker.account_number)
    proxy_port, admin_port = free_ports(2)
    env = {
        **base_environment(database_url, redis_url),
        "GATEKEEPER_PROXY__PORT": str(proxy_port),
        "GATEKEEPER_ADMIN__PORT": str(admin_port),
        "GATEKEEPER_PROXY__UPSTREAM_URL": paper_broker.url,
        "GATEKEEPER_RISK__RECONCILE_INTERVAL_SECONDS": "0.2",
        "GATEKEEPER_RISK__RECONCILE_GRACE_SECONDS": "2",
        "GATEKEEPER_RISK__RECONCILE_NOT_PLACED_AFTER_SECONDS": "2",
    }
    proxy = f"http://127.0.0.1:{proxy_port}"
    account = paper_broker.account_number
    # the broker holds its answer 1.5 s (having placed the order, or before placing it: the
    # dropped connection then cancels it): the gatekeeper dies meanwhile
    paper_broker.book.add_fault(
        f"/accounts/{account}/orders", delay_seconds=1.5, method="POST", times=1, after=placed
    )
    process = await spawn_cli(["serve"], env)
    try:
        await wait_http(f"http://127.0.0.1:{admin_port}/healthz", process=process)
        async with aiohttp.ClientSession() as session:
            bot = Bot(proxy, paper_auth, session, account)
            pending = asyncio.ensure_future(bot.place(order("AAPL", 1, "150.00")))
            await _decided(pg_pool)
            # forwarded (and placed, if the broker places it first), no answer yet
            await _at_the_broker(paper_broker.book, account, placed)
            os.kill(process.pid, signal.SIGKILL)
            await process.wait()
            with contextlib.suppress(aiohttp.ClientError):
                await pending
            decision_id = await pg_pool.fetchval("SELECT decision_id::text FROM risk_decisions")
            assert await pg_pool.fetchval(LATEST, decision_id) is None  # nothing recorded
            process = await spawn_cli(["serve"], env)
            await wait_http(f"http://127.0.0.1:{admin_port}/healthz", process=process)
            # a bot of the account is seen again (its credential lets the reconciler look)
            assert (await bot.place(order("AAPL", 1, "150.00"), dry_run=True)).status == 201
            row = await _resolved(pg_pool, decision_id, within=15.0)
    finally:
        if process.returncode is None:
            process.terminate()
            await process.wait()
    assert row["outcome"] == outcome
    if placed:
        (entry,) = paper_broker.book.received_orders()
        assert row["broker_order_id"] == str(entry.order_ids[0])
    else:
        assert received_count(paper_broker.book, account) == 0
