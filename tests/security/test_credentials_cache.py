"""Cached account state serves a request only if the broker confirmed the request's credential
for that account (issue 8, item 3): a stranger's order on someone else's account is never
decided on, nor answered with, the victim's cached state."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Any

import aiohttp
import asyncpg
import pytest
from redis.asyncio import Redis

from tests.fixtures.orders import Bot, order
from tests.fixtures.paper import PaperBroker
from tests.security.credentials import (
    another_token,
    decision_of,
    gatekeeper_caching,
    orders_seen,
    other_users_auth,
    state_fetches,
)

# The victim's figures (Account A: NLV 100,000, cash 60,000, TQQQ and BIL held) as they
# would appear in a rejection's message, its figures or a log line.
VICTIM_FIGURES = ("100,000", "100000", "60,000", "60000", "TQQQ", "BIL")
# 1,000 AAPL at 150: far above every default limit, so a decision on the victim's state
# would be a 422 that quotes the victim's figures.
BIG = order("AAPL", 1000, "150.00")


def assert_no_victim_figures(text: str) -> None:
    for figure in VICTIM_FIGURES:
        assert figure not in text, f"{figure!r} shown to a stranger: {text}"


async def test_a_strangers_order_gets_the_brokers_403_not_the_victims_cached_state(
    paper_broker: PaperBroker,
    paper_auth: dict[str, str],
    database_url: str,
    redis_url: str,
    pg_pool: asyncpg.Pool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    account = paper_broker.account_number
    stranger_auth = await other_users_auth(paper_broker)
    async with (
        gatekeeper_caching(paper_broker, database_url, redis_url) as gate,
        aiohttp.ClientSession() as session,
    ):
        victim = Bot(gate.proxy_url, paper_auth, session, account)
        stranger = Bot(gate.proxy_url, stranger_auth, session, account)
        assert (await victim.place(order("AAPL", 1), dry_run=True)).status == 201
        caplog.clear()
        caplog.set_level(logging.DEBUG)

        answer = await stranger.place(BIG)

    assert answer.status == 403, answer.body
    assert answer.body["error"]["code"] == "broker_auth_failed"
    assert answer.codes == ["broker_auth_failed"]
    assert_no_victim_figures(str(answer.body))
    assert_no_victim_figures("\n".join(r.getMessage() for r in caplog.records))
    row = await decision_of(pg_pool, answer)
    assert (row["account_id"], row["verdict"], row["codes"], row["trade_count"]) == (
        account,
        "reject",
        ["broker_auth_failed"],
        0,
    )
    assert_no_victim_figures(row["message"] + row["detail"])
    assert orders_seen(paper_broker) == [f"POST /accounts/{account}/orders/dry-run"]


@pytest.mark.parametrize("victim_cached", [True, False], ids=["victim-cached", "cold"])
async def test_bearer_garbage_gets_401_recorded_not_counted_not_forwarded(
    paper_broker: PaperBroker,
    paper_auth: dict[str, str],
    database_url: str,
    redis_url: str,
    pg_pool: asyncpg.Pool,
    victim_cached: bool,
) -> None:
    account = paper_broker.account_number
    async with (
        gatekeeper_caching(paper_broker, database_url, redis_url) as gate,
        aiohttp.ClientSession() as session,
    ):
        if victim_cached:
            victim = Bot(gate.proxy_url, paper_auth, session, account)
            assert (await victim.place(order("AAPL", 1), dry_run=True)).status == 201
        before = orders_seen(paper_broker)
        garbage = Bot(gate.proxy_url, {"Authorization": "Bearer garbage"}, session, account)

        answers = [await garbage.place(order("AAPL", 1)) for _ in range(3)]

    for answer in answers:
        assert answer.status == 401, answer.body
        assert answer.body["error"]["code"] == "broker_auth_failed"
        row = await decision_of(pg_pool, answer)
        assert (row["verdict"], row["codes"], row["trade_count"]) == (
            "reject",
            ["broker_auth_failed"],
            0,
        )
        assert_no_victim_figures(str(answer.body))
    assert orders_seen(paper_broker) == before  # nothing forwarded
    counted = await pg_pool.fetchval(
        "SELECT coalesce(sum(trade_count), 0) FROM risk_decisions WHERE verdict = 'allow'"
        " AND route_kind = 'order'"
    )
    assert counted == 0


async def test_the_victims_orders_keep_using_the_cache_a_strangers_do_not(
    paper_broker: PaperBroker,
    paper_auth: dict[str, str],
    database_url: str,
    redis_url: str,
) -> None:
    account = paper_broker.account_number
    stranger_auth = await other_users_auth(paper_broker)
    second_token = await another_token(paper_broker)
    async with (
        gatekeeper_caching(paper_broker, database_url, redis_url) as gate,
        aiohttp.ClientSession() as session,
    ):
        victim = Bot(gate.proxy_url, paper_auth, session, account)
        stranger = Bot(gate.proxy_url, stranger_auth, session, account)
        victims_other_bot = Bot(gate.proxy_url, second_token, session, account)

        assert (await victim.place(order("AAPL", 1), dry_run=True)).status == 201
        assert state_fetches(paper_broker, account) == 1
        assert (await victim.place(order("AAPL", 2), dry_run=True)).status == 201
        assert state_fetches(paper_broker, account) == 1  # served from the cache

        assert (await stranger.place(order("AAPL", 1), dry_run=True)).status == 403
        assert state_fetches(paper_broker, account) == 2  # fetched with its own credential
        assert (await stranger.place(order("AAPL", 1), dry_run=True)).status == 403
        assert state_fetches(paper_broker, account) == 3  # a refusal confirms nothing

        # Another valid token of the owner: confirmed by one fetch, then cached too.
        assert (await victims_other_bot.place(order("AAPL", 1), dry_run=True)).status == 201
        assert (await victims_other_bot.place(order("AAPL", 1), dry_run=True)).status == 201
        assert (await victim.place(order("AAPL", 3), dry_run=True)).status == 201
        assert state_fetches(paper_broker, account) == 4


async def test_a_stranger_never_rides_the_victims_refresh(
    paper_broker: PaperBroker,
    paper_auth: dict[str, str],
    database_url: str,
    redis_url: str,
    pg_pool: asyncpg.Pool,
) -> None:
    """Concurrent requests share a state fetch only when they carry the same credential: the
    fetch confirms the credential it used, and no other."""
    account = paper_broker.account_number
    stranger_auth = await other_users_auth(paper_broker)
    # The victim's fetch is still running when the stranger's order arrives.
    paper_broker.book.add_fault(f"/accounts/{account}/balances", delay_seconds=0.5, times=1)
    async with (
        gatekeeper_caching(paper_broker, database_url, redis_url) as gate,
        aiohttp.ClientSession() as session,
    ):
        victim = Bot(gate.proxy_url, paper_auth, session, account)
        stranger = Bot(gate.proxy_url, stranger_auth, session, account)
        victims = asyncio.ensure_future(victim.place(order("AAPL", 1), dry_run=True))
        await asyncio.sleep(0.2)
        answer = await stranger.place(BIG)
        assert (await victims).status == 201

    assert answer.status == 403, answer.body
    assert answer.body["error"]["code"] == "broker_auth_failed"
    assert_no_victim_figures(str(answer.body))
    assert (await decision_of(pg_pool, answer))["codes"] == ["broker_auth_failed"]


async def all_redis_text(redis: Redis) -> list[tuple[bytes, bytes]]:
    """Every key of the database with everything it holds, whatever its type."""
    found: list[tuple[bytes, bytes]] = []
    async for key in redis.scan_iter(count=1000):
        named = await redis.type(key)
        kind = named.decode() if isinstance(named, bytes) else named
        parts: list[Any]
        if kind == "string":
            parts = [await redis.get(key)]
        elif kind == "hash":
            parts = [x for pair in (await redis.hgetall(key)).items() for x in pair]
        elif kind == "list":
            parts = list(await redis.lrange(key, 0, -1))
        elif kind == "set":
            parts = list(await redis.smembers(key))
        elif kind == "zset":
            parts = list(await redis.zrange(key, 0, -1, withscores=True))
        elif kind == "stream":
            parts = [repr(entry) for entry in await redis.xrange(key) or []]
        else:
            parts = [kind]
        found.append(
            (key, b"\n".join(p if isinstance(p, bytes) else str(p).encode() for p in parts))
        )
    return found


async def test_redis_holds_a_keyed_digest_of_the_credential_never_the_credential(
    paper_broker: PaperBroker,
    paper_auth: dict[str, str],
    database_url: str,
    redis_url: str,
    redis_client: Redis,
) -> None:
    account = paper_broker.account_number
    authorization = paper_auth["Authorization"]
    token = authorization.removeprefix("Bearer ")
    plain_digests = [hashlib.sha256(value.encode()).hexdigest() for value in (authorization, token)]
    async with (
        gatekeeper_caching(paper_broker, database_url, redis_url) as gate,
        aiohttp.ClientSession() as session,
    ):
        victim = Bot(gate.proxy_url, paper_auth, session, account)
        assert (await victim.place(order("AAPL", 1), dry_run=True)).status == 201
        garbage = Bot(gate.proxy_url, {"Authorization": "Bearer garbage"}, session, account)
        assert (await garbage.place(order("AAPL", 1), dry_run=True)).status == 401

        everything = await all_redis_text(redis_client)

    confirmations = [key for key, _ in everything if key.startswith(b"gk:cred:v1:")]
    assert len(confirmations) == 1, confirmations  # the victim's; garbage confirmed nothing
    assert confirmations[0].endswith(b":" + account.encode())
    for key, value in everything:
        for needle in (token, "Bearer", "garbage", *plain_digests):
            assert needle.encode() not in key, (needle, key)
            assert needle.encode() not in value, (needle, key)
    ttl_ms = await redis_client.pttl(confirmations[0])
    assert 0 < ttl_ms <= 60_000


async def test_a_confirmation_lasts_credential_ttl_seconds(
    paper_broker: PaperBroker,
    paper_auth: dict[str, str],
    database_url: str,
    redis_url: str,
    redis_client: Redis,
) -> None:
    account = paper_broker.account_number
    # 3 s: the confirmation outlives the rest of the first order, the second order and the
    # look at Redis, even on a machine three times slower than usual.
    async with (
        gatekeeper_caching(
            paper_broker, database_url, redis_url, credential_ttl_seconds=3.0
        ) as gate,
        aiohttp.ClientSession() as session,
    ):
        victim = Bot(gate.proxy_url, paper_auth, session, account)
        assert (await victim.place(order("AAPL", 1), dry_run=True)).status == 201
        assert (await victim.place(order("AAPL", 1), dry_run=True)).status == 201
        assert state_fetches(paper_broker, account) == 1
        keys = [key async for key in redis_client.scan_iter(match="gk:cred:v1:*")]
        assert len(keys) == 1
        assert 0 < await redis_client.pttl(keys[0]) <= 3_000

        await asyncio.sleep(3.2)  # the state is still fresh (30 s), the confirmation is not
        assert await redis_client.exists(keys[0]) == 0
        assert (await victim.place(order("AAPL", 1), dry_run=True)).status == 201
        assert state_fetches(paper_broker, account) == 2
        assert (await victim.place(order("AAPL", 1), dry_run=True)).status == 201
        assert state_fetches(paper_broker, account) == 2


async def test_broker_down_a_stranger_gets_no_cached_copy_the_victim_does(
    paper_broker: PaperBroker,
    paper_auth: dict[str, str],
    database_url: str,
    redis_url: str,
) -> None:
    """The fallback to a cached copy when the broker cannot answer is for credentials
    confirmed for the account only."""
    account = paper_broker.account_number
    stranger_auth = await other_users_auth(paper_broker)
    async with (
        gatekeeper_caching(paper_broker, database_url, redis_url) as gate,
        aiohttp.ClientSession() as session,
    ):
        victim = Bot(gate.proxy_url, paper_auth, session, account)
        stranger = Bot(gate.proxy_url, stranger_auth, session, account)
        assert (await victim.place(order("AAPL", 1), dry_run=True)).status == 201
        paper_broker.book.add_fault(f"/accounts/{account}/balances", status=503)

        answer = await stranger.place(BIG)
        assert answer.status == 503, answer.body
        assert answer.body["error"]["code"] == "state_unavailable"
        assert_no_victim_figures(str(answer.body))
        assert (await victim.place(order("AAPL", 1), dry_run=True)).status == 201
