"""TastyTrade's account streamer, end to end: the paper broker serves it over a WebSocket,
the gatekeeper keeps one open per account it has credentials for and applies the changes to
the cached state (gatekeeper.adapters.account_streamer, gatekeeper.paper.streamer).

Every gatekeeper here keeps fresh state fresh for a minute: without the streamer, an order
placed directly at the broker would stay unseen that long, so a cached state (what the next
decision reads) that shows it within a second proves the streamer delivered it. The second is
measured on the cache in Redis, not through dry-runs, so it counts the streamer's delivery
only, not the gatekeeper's own order latency (half a second for a dry-run on a loaded
machine); a decision then shows it works with what the cache holds.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import aiohttp
import asyncpg
import pytest
from redis.asyncio import Redis

from gatekeeper.adapters.account_changes import apply_changes
from gatekeeper.adapters.state_cache import STATE_KEY
from gatekeeper.settings import RiskSettings, Settings
from tests.fixtures.gate import make_settings, start_gatekeeper
from tests.fixtures.orders import Bot, order, protect
from tests.integration.test_state_after_forward import (
    broker_log,
    clear_broker_log,
    eventually,
    place_at_broker,
    state_reads,
)

SEEN_WITHIN_SECONDS = 1.0


def settings_for(paper_url: str, database_url: str, redis_url: str, **proxy: Any) -> Settings:
    settings = make_settings(paper_url, database_url, redis_url, **proxy)
    risk = RiskSettings(state_ttl_seconds=60, max_state_age_seconds=120, quote_ttl_seconds=60)
    return settings.model_copy(update={"risk": risk})


@pytest.fixture
async def streaming_bot(
    paper_broker: Any,
    paper_auth: dict[str, str],
    database_url: str,
    redis_url: str,
    pg_pool: asyncpg.Pool,
) -> AsyncIterator[Bot]:
    """A bot of Account A behind a gatekeeper whose account streamer is on (the default)."""
    await protect(pg_pool, paper_broker.account_number)
    settings = settings_for(paper_broker.url, database_url, redis_url)
    async with start_gatekeeper(settings) as gate, aiohttp.ClientSession() as session:
        yield Bot(gate.proxy_url, paper_auth, session, paper_broker.account_number)


async def streamer_sessions(paper_http: aiohttp.ClientSession, account: str) -> set[str]:
    async with paper_http.get("/__paper/streamer") as response:
        assert response.status == 200
        items = (await response.json())["data"]["items"]
    return {item["session-id"] for item in items if account in item["accounts"]}


async def cash_seen(bot: Bot, pg_pool: asyncpg.Pool) -> Decimal:
    """The cash balance the gatekeeper's next decision (a dry-run) works with."""
    answer = await bot.place(order("AAPL", 1, "1.00"), dry_run=True)
    assert answer.status == 201, answer.body
    decision_id = answer.headers["X-Gatekeeper-Decision-Id"]
    detail = await pg_pool.fetchval(
        "SELECT detail FROM risk_decisions WHERE decision_id = $1", decision_id
    )
    return Decimal(json.loads(detail)["figures"]["cash_balance"])


async def cash_cached(redis: Redis, account: str) -> Decimal | None:
    """The cash balance in the account's cached state: what the next decision reads."""
    raw = await redis.get(STATE_KEY.format(account=account))
    if raw is None:
        return None
    return Decimal(str(json.loads(raw)["balances"]["cash-balance"]))


async def seconds_until_seen(
    bot: Bot,
    pg_pool: asyncpg.Pool,
    paper_http: aiohttp.ClientSession,
    redis: Redis,
    before: Decimal,
) -> float:
    """Buy 10 AAPL directly at the broker (filled at once: cash moves); how long until the
    cached state shows the new cash (fails after SEEN_WITHIN_SECONDS). The next gatekeeper
    decision then works with it (its own latency is not counted)."""
    assert await cash_cached(redis, bot.account) == before
    await place_at_broker(paper_http, bot.auth, bot.account, order("AAPL", 10, None))
    placed = time.perf_counter()
    while (cached := await cash_cached(redis, bot.account)) == before:
        elapsed = time.perf_counter() - placed
        assert elapsed < SEEN_WITHIN_SECONDS, "the direct order not cached within a second"
        await asyncio.sleep(0.01)
    seconds = time.perf_counter() - placed
    assert cached is not None
    assert cached < before
    assert await cash_seen(bot, pg_pool) == cached  # the next decision's cash
    return seconds


async def test_an_order_placed_directly_at_the_broker_is_seen_by_the_next_decision_within_a_second(
    streaming_bot: Bot,
    pg_pool: asyncpg.Pool,
    paper_http: aiohttp.ClientSession,
    redis_client: Redis,
) -> None:
    bot = streaming_bot
    before = await cash_seen(bot, pg_pool)  # the gatekeeper now holds the bot's credentials

    async def connected() -> bool:
        return bool(await streamer_sessions(paper_http, bot.account))

    await eventually(connected)
    seconds = await seconds_until_seen(bot, pg_pool, paper_http, redis_client, before)
    assert seconds < SEEN_WITHIN_SECONDS


async def test_the_streamer_reconnects_after_the_broker_drops_it(
    streaming_bot: Bot,
    pg_pool: asyncpg.Pool,
    paper_http: aiohttp.ClientSession,
    redis_client: Redis,
) -> None:
    bot = streaming_bot
    before = await cash_seen(bot, pg_pool)
    first: set[str] = set()

    async def connected() -> bool:
        first.update(await streamer_sessions(paper_http, bot.account))
        return bool(first)

    await eventually(connected)
    async with paper_http.delete("/__paper/streamer") as response:
        assert response.status == 200

    async def reconnected() -> bool:
        return bool(await streamer_sessions(paper_http, bot.account) - first)

    await eventually(reconnected, seconds=10)
    await seconds_until_seen(bot, pg_pool, paper_http, redis_client, before)


async def test_refused_credentials_stop_the_streamer_until_new_ones_are_seen(
    streaming_bot: Bot,
    pg_pool: asyncpg.Pool,
    paper_broker: Any,
    paper_http: aiohttp.ClientSession,
) -> None:
    bot = streaming_bot
    await cash_seen(bot, pg_pool)

    async def connected() -> bool:
        return bool(await streamer_sessions(paper_http, bot.account))

    await eventually(connected)
    # The token is revoked, then the connection dropped: connecting again is refused.
    async with paper_http.delete("/sessions", headers=bot.auth) as response:
        assert response.status == 204
    async with paper_http.delete("/__paper/streamer") as response:
        assert response.status == 200

    async def attempts() -> int:
        return sum(line.endswith("/account-streamer") for line in await broker_log(paper_http))

    await eventually(lambda: _at_least(attempts, 2))
    await asyncio.sleep(1.5)  # three backoff periods: no attempt with the refused token
    assert await attempts() == 2
    assert not await connected()
    # A new token, seen on the bot's next order, opens it again.
    body = {
        "grant_type": "refresh_token",
        "refresh_token": paper_broker.refresh_token,
        "client_secret": paper_broker.client_secret,
    }
    async with paper_http.post("/oauth/token", json=body) as response:
        bot.auth = {"Authorization": f"Bearer {(await response.json())['access_token']}"}
    await cash_seen(bot, pg_pool)
    await eventually(connected)


async def _at_least(count: Callable[[], Awaitable[int]], wanted: int) -> bool:
    return await count() >= wanted


async def test_with_the_streamer_off_polling_still_refreshes(
    paper_broker: Any,
    paper_auth: dict[str, str],
    paper_http: aiohttp.ClientSession,
    database_url: str,
    redis_url: str,
    pg_pool: asyncpg.Pool,
) -> None:
    account = paper_broker.account_number
    await protect(pg_pool, account)
    settings = make_settings(
        paper_broker.url, database_url, redis_url, account_streamer=False
    ).model_copy(update={"risk": RiskSettings(state_ttl_seconds=0.5, max_state_age_seconds=10)})
    async with start_gatekeeper(settings) as gate, aiohttp.ClientSession() as session:
        bot = Bot(gate.proxy_url, paper_auth, session, account)
        before = await cash_seen(bot, pg_pool)
        await place_at_broker(paper_http, paper_auth, account, order("AAPL", 10, None))
        await clear_broker_log(paper_http)

        async def refreshed() -> bool:
            return await cash_seen(bot, pg_pool) < before

        await eventually(refreshed)
        assert state_reads(await broker_log(paper_http), account)
        assert await streamer_sessions(paper_http, account) == set()
        assert not [line for line in await broker_log(paper_http) if "streamer" in line]


async def test_the_paper_streamer_speaks_tastytrades_protocol(
    paper_broker: Any, paper_auth: dict[str, str], paper_http: aiohttp.ClientSession
) -> None:
    """connect first (else connect-not-completed), acks carry the request id, an account of
    another user is refused, and a fill sends Order, CurrentPosition and AccountBalance."""
    account = paper_broker.account_number
    token = paper_auth["Authorization"]
    url = paper_broker.url.replace("http://", "ws://") + "/account-streamer"
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        await ws.send_json({"auth-token": token, "action": "heartbeat", "request-id": 1})
        early = await ws.receive_json(timeout=5)
        assert (early["status"], early["message"]) == ("error", "connect-not-completed")
        foreign = [paper_broker.foreign_account_number]
        await ws.send_json(
            {"auth-token": token, "action": "connect", "value": foreign, "request-id": 2}
        )
        assert (await ws.receive_json(timeout=5))["status"] == "error"
        await ws.send_json({"auth-token": "Bearer nope", "action": "connect", "request-id": 3})
        assert (await ws.receive_json(timeout=5))["status"] == "error"
        await ws.send_json(
            {"auth-token": token, "action": "connect", "value": [account], "request-id": 4}
        )
        ack = await ws.receive_json(timeout=5)
        assert ack["status"] == "ok"
        assert (ack["action"], ack["request-id"], ack["value"]) == ("connect", 4, [account])
        assert ack["web-socket-session-id"]
        order_id = await place_at_broker(paper_http, paper_auth, account, order("AAPL", 5, None))
        kinds: dict[str, dict[str, Any]] = {}
        while len(kinds) < 3:
            message = await ws.receive_json(timeout=5)
            kinds[message["type"]] = message["data"]
            assert isinstance(message["timestamp"], int)
        assert str(kinds["Order"]["id"]) == order_id
        assert kinds["Order"]["status"] == "Filled"
        assert kinds["CurrentPosition"]["symbol"] == "AAPL"
        assert kinds["AccountBalance"]["account-number"] == account


def _entry(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "fetched_at": 1.0,
        "balances": {"account-number": "A", "cash-balance": "100", "updated-at": 2000},
        "positions": [{"account-number": "A", "symbol": "BIL", "quantity": 10, "updated-at": 2000}],
        "live_orders": [{"account-number": "A", "id": 7, "status": "Live", "updated-at": 2000}],
        "trading_status": {},
    }
    return {**base, **fields}


def test_streamed_changes_replace_add_and_remove_by_their_time() -> None:
    entry = _entry()
    changes: list[tuple[str, dict[str, Any]]] = [
        ("AccountBalance", {"account-number": "A", "cash-balance": "90", "updated-at": 3000}),
        ("Order", {"account-number": "A", "id": 7, "status": "Cancelled", "updated-at": 3000}),
        ("Order", {"account-number": "A", "id": 8, "status": "Live", "updated-at": 3000}),
        ("CurrentPosition", {"account-number": "A", "symbol": "BIL", "quantity": 0,
                             "quantity-direction": "Zero", "updated-at": 3000}),
        ("AccountBalance", {"account-number": "B", "cash-balance": "1", "updated-at": 4000}),
    ]  # fmt: skip
    applied = apply_changes(entry, "A", changes)
    assert applied["balances"]["cash-balance"] == "90"
    assert [(o["id"], o["status"]) for o in applied["live_orders"]] == [
        (7, "Cancelled"),
        (8, "Live"),
    ]
    assert applied["positions"] == []
    assert applied["fetched_at"] == entry["fetched_at"]  # never younger
    assert entry == _entry()  # the cached entry itself is not modified


def test_a_change_older_than_the_snapshot_never_sets_it_back() -> None:
    """Balances move with quotes, unannounced: a snapshot read after a pushed balance must
    keep its own, later one (e.g. a daily loss the push predates)."""
    entry = _entry()
    older: list[tuple[str, dict[str, Any]]] = [
        ("AccountBalance", {"account-number": "A", "cash-balance": "999",
                            "updated-at": "1970-01-01T00:00:01+00:00"}),
        ("Order", {"account-number": "A", "id": 7, "status": "Received", "updated-at": 1000}),
    ]  # fmt: skip
    for replay in (False, True):
        applied = apply_changes(entry, "A", older, replay=replay)
        assert applied["balances"]["cash-balance"] == "100"
        assert applied["live_orders"][0]["status"] == "Live"
    untimed: list[tuple[str, dict[str, Any]]] = [
        ("AccountBalance", {"account-number": "A", "cash-balance": "5"})
    ]
    assert apply_changes(entry, "A", untimed, replay=True)["balances"]["cash-balance"] == "100"
    assert apply_changes(entry, "A", untimed)["balances"]["cash-balance"] == "5"
