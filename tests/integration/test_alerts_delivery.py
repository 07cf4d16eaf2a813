"""Alert delivery (issue 10, item 3): with the receivers down orders keep their latency and
the messages arrive once the receivers return; two replicas deliver each message once; the
risk path failing is alerted once: Redis down at once, Postgres down once Postgres is back (the
failures are kept in memory until the outbox can take them)."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import pytest
from pydantic import SecretStr

from gatekeeper.alerts import outbox
from gatekeeper.embedded import EmbeddedPostgres, EmbeddedRedis
from tests.fixtures.alerts import (
    SmtpSink,
    WebhookSink,
    alert_settings,
    eventually,
    settled,
    with_alerts,
)
from tests.fixtures.gate import make_settings, start_gatekeeper
from tests.fixtures.orders import Bot, order, protect
from tests.integration.test_alerts import BASE, admin_call, admin_token, kinds


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpSink]:
    sink = SmtpSink()
    await sink.start()
    yield sink
    await sink.stop()


@pytest.fixture
async def hooks() -> AsyncIterator[WebhookSink]:
    sink = WebhookSink()
    await sink.start()
    yield sink
    await sink.stop()


async def _blackhole() -> tuple[asyncio.Server, list[asyncio.StreamWriter]]:
    """A receiver that accepts connections and never answers: every send times out."""
    writers: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        await reader.read()  # until the client gives up

    return await asyncio.start_server(hold, "127.0.0.1", 0), writers


async def _latencies(bot: Bot, count: int) -> list[float]:
    spent = []
    for _ in range(count):
        started = time.perf_counter()
        await bot.place(order("AAPL", 1, "150.00"), dry_run=True)
        spent.append(time.perf_counter() - started)
    return spent


async def test_receivers_down_orders_keep_their_latency_and_messages_arrive_later(
    paper_broker: Any,
    paper_auth: dict[str, str],
    database_url: str,
    redis_url: str,
    pg_pool: asyncpg.Pool,
    smtp: SmtpSink,
    hooks: WebhookSink,
) -> None:
    protection = await protect(pg_pool, paper_broker.account_number)
    token = await admin_token(pg_pool)
    hole, held = await _blackhole()
    hole_port = hole.sockets[0].getsockname()[1]
    # A send times out after 5 s: an order that waited for an alert's delivery would take
    # that long, unmistakably more than any order on a slow machine.
    alerts = alert_settings(smtp, hooks, rejection_burst_count=5, send_timeout_seconds=5.0)
    # A third receiver, a webhook that hangs: the worker waits out its send timeout on every
    # attempt.
    hanging = alerts.webhooks[0].model_copy(
        update={
            "name": "hanging",
            "url": SecretStr(f"http://127.0.0.1:{hole_port}/x"),
            "secret": None,
        }
    )
    alerts = alerts.model_copy(update={"webhooks": (*alerts.webhooks, hanging)})
    settings = with_alerts(make_settings(paper_broker.url, database_url, redis_url), alerts)
    try:
        async with start_gatekeeper(settings) as gate, aiohttp.ClientSession() as session:
            bot = Bot(gate.proxy_url, paper_auth, session, paper_broker.account_number)
            await _latencies(bot, 3)  # warm the caches
            up = await _latencies(bot, 10)

            await hooks.stop()
            await smtp.stop()
            body = {"reason": "receivers down drill", "triggered_by": "dave"}
            path = f"{BASE}/{protection.id}/emergency_stop"
            assert await admin_call(gate, token, "POST", path, body) == 200
            retries = gate.metrics.alert_deliveries
            await eventually(lambda: retries.labels("webhook", "retry")._value.get() >= 4)
            await eventually(lambda: retries.labels("email", "retry")._value.get() >= 1)
            down = await _latencies(bot, 10)  # rejected by the stop: a burst of rejections
            # Never a send timeout (5 s) on the order path; the typical order about as fast as
            # with the receivers up (the margin absorbs a slow, busy machine's noise).
            assert max(down) < 2.5, (up, down)
            assert statistics.median(down) < statistics.median(up) * 3 + 0.25, (up, down)
            assert hooks.received == []
            assert smtp.mails == []

            await hooks.start()
            await smtp.start()
            wanted = {"stop_triggered", "rejection_burst"}
            await eventually(lambda: wanted <= set(kinds(hooks)))
            await eventually(lambda: len(smtp.mails) == 2)
            await asyncio.sleep(0.5)  # nothing more comes
            assert sorted(kinds(hooks)) == sorted(wanted)
            assert len(hooks.at("/slack")) == len(hooks.at("/ntfy")) == 2
            assert len(smtp.mails) == 2
            burst = next(
                i.json() for i in hooks.at("/json") if i.json()["kind"] == "rejection_burst"
            )
            assert burst["account"] == paper_broker.account_number
            assert "emergency_stop" in burst["text"]
            assert retries.labels("webhook", "delivered")._value.get() == 8
    finally:
        hole.close()
        for writer in held:
            writer.close()
        await hole.wait_closed()
    states = await pg_pool.fetch(
        "SELECT target, state, last_error FROM alert_deliveries WHERE target = 'hanging'"
    )
    assert {row["state"] for row in states} == {"pending"}
    assert all(row["last_error"] in (None, "TimeoutError", "ServerTimeoutError") for row in states)


async def test_two_replicas_deliver_each_message_once(
    paper_broker: Any, database_url: str, redis_url: str, pg_pool: asyncpg.Pool, hooks: WebhookSink
) -> None:
    hooks.delay = 0.02  # slow enough that both workers hold claims at once
    settings = with_alerts(
        make_settings(paper_broker.url, database_url, redis_url), alert_settings(None, hooks)
    )
    async with start_gatekeeper(settings) as one, start_gatekeeper(settings) as two:
        async with pg_pool.acquire() as conn, conn.transaction():
            for number in range(60):
                payload = {"code": "cache_unavailable", "count": 1}
                await outbox.enqueue(conn, "risk_path_failed", f"5WX{number:05d}", payload)
        await eventually(lambda: len(hooks.at("/json")) == 60, within=30)
        await eventually(lambda: len(hooks.received) == 240, within=30)
        await asyncio.sleep(0.5)
        sent = [(i.path, i.headers["X-Gatekeeper-Alert-Id"]) for i in hooks.received]
        assert [item for item, n in Counter(sent).items() if n > 1] == []
        assert len(sent) == 240
        by_replica = [
            gate.metrics.alert_deliveries.labels("webhook", "delivered")._value.get()
            for gate in (one, two)
        ]
        assert sum(by_replica) == 240
        assert all(count > 0 for count in by_replica), by_replica


async def test_the_risk_path_failing_is_alerted_once(
    paper_broker: Any,
    paper_auth: dict[str, str],
    database_url: str,
    private_redis: EmbeddedRedis,
    pg_pool: asyncpg.Pool,
    hooks: WebhookSink,
) -> None:
    await protect(pg_pool, paper_broker.account_number)
    settings = with_alerts(
        make_settings(paper_broker.url, database_url, private_redis.url),
        alert_settings(None, hooks),
    )
    async with start_gatekeeper(settings) as gate, aiohttp.ClientSession() as session:
        bot = Bot(gate.proxy_url, paper_auth, session, paper_broker.account_number)
        await asyncio.to_thread(private_redis.stop)
        for _ in range(3):
            answer = await bot.place(order("AAPL", 1, "150.00"))
            assert answer.body["error"]["code"] == "cache_unavailable"
        await eventually(lambda: "risk_path_failed" in kinds(hooks))
        await asyncio.sleep(0.3)
    failed = [i.json() for i in hooks.at("/json") if i.json()["kind"] == "risk_path_failed"]
    assert len(failed) == 1
    assert failed[0]["account"] == paper_broker.account_number
    assert "cache_unavailable" in failed[0]["text"]


async def test_a_postgres_outage_is_kept_in_memory_and_alerted_once_it_is_back(
    paper_broker: Any,
    paper_auth: dict[str, str],
    private_postgres: EmbeddedPostgres,
    redis_url: str,
    hooks: WebhookSink,
) -> None:
    account = paper_broker.account_number
    pool = await asyncpg.create_pool(private_postgres.url, min_size=1, max_size=2)
    try:
        await protect(pool, account)
    finally:
        await pool.close()
    settings = with_alerts(
        make_settings(paper_broker.url, private_postgres.url, redis_url),
        alert_settings(None, hooks),
    )
    async with start_gatekeeper(settings) as gate, aiohttp.ClientSession() as session:
        bot = Bot(gate.proxy_url, paper_auth, session, account)
        assert (await bot.place(order("AAPL", 1, "150.00"))).status == 201
        await asyncio.to_thread(private_postgres.stop)
        for _ in range(3):
            answer = await bot.place(order("AAPL", 1, "150.00"))
            assert answer.body["error"]["code"] == "database_unavailable"
        await asyncio.sleep(0.5)  # about ten delivery rounds: the outbox cannot be written
        assert "risk_path_failed" not in kinds(hooks)

        await asyncio.to_thread(private_postgres.start)
        await eventually(lambda: "risk_path_failed" in kinds(hooks), within=30)
        await asyncio.sleep(0.5)  # nothing more comes
    failed = [i.json() for i in hooks.at("/json") if i.json()["kind"] == "risk_path_failed"]
    assert len(failed) == 1
    assert failed[0]["account"] == account
    assert failed[0]["title"] == f"Risk checks failing on {account}: database_unavailable"
    assert "Failures: 3 from" in failed[0]["text"]  # the three noted while Postgres was down
    assert all(len(hooks.at(p)) == len(hooks.at("/json")) for p in ("/slack", "/ntfy"))
    pool = await asyncpg.create_pool(private_postgres.url, min_size=1, max_size=1)
    try:
        # One event, its four webhook deliveries marked delivered (once each).
        await settled(
            pool,
            "SELECT array_agg(d.state ORDER BY d.id) FROM alert_events e"
            " JOIN alert_deliveries d ON d.event_id = e.id"
            " WHERE e.kind = 'risk_path_failed' AND d.channel = 'webhook'",
            ["delivered"] * 4,
        )
    finally:
        await pool.close()
