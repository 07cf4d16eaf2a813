"""After an order is forwarded, the account's state is refreshed in the background, not
dropped: the account's next order waits for no broker read (issue 12, item 2).

The state source (gatekeeper.adapters.account_state) is driven directly against the paper
broker, real Redis; the end-to-end check goes through the gatekeeper. The paper broker's
request log (``/__paper/requests``) says which reads reached the broker and when.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import asyncpg
import pytest
from redis.asyncio import Redis

from gatekeeper.adapters.account_state import StateSource
from gatekeeper.adapters.state_cache import REPLACE_IF_UNCHANGED, STATE_KEY
from gatekeeper.metrics import Metrics
from gatekeeper.settings import RiskSettings, Settings
from tests.fixtures.gate import make_settings, start_gatekeeper
from tests.fixtures.orders import Bot, order, protect

REPLACE_SHA = hashlib.sha1(REPLACE_IF_UNCHANGED.encode(), usedforsecurity=False).hexdigest()
STATE_READS = ("/balances", "/positions", "/orders/live", "/trading-status")


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 5.0) -> None:
    """Poll ``check`` until it holds (fails the test after ``seconds``)."""
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, "not within the deadline"
        await asyncio.sleep(0.02)


async def broker_log(paper_http: aiohttp.ClientSession) -> list[str]:
    async with paper_http.get("/__paper/requests") as response:
        assert response.status == 200
        return [f"{i['method']} {i['raw-path']}" for i in (await response.json())["data"]["items"]]


async def clear_broker_log(paper_http: aiohttp.ClientSession) -> None:
    async with paper_http.delete("/__paper/requests") as response:
        assert response.status == 200


def state_reads(lines: list[str], account: str) -> list[str]:
    base = f"GET /accounts/{account}"
    return [line for line in lines if line.startswith(base) and line.endswith(STATE_READS)]


async def cached_order_ids(redis: Redis, account: str) -> set[str]:
    raw = await redis.get(STATE_KEY.format(account=account))
    if raw is None:
        return set()
    return {str(o.get("id")) for o in json.loads(raw)["live_orders"]}


def slow_state_settings(paper_url: str, database_url: str, redis_url: str) -> Settings:
    """Fresh state stays fresh for the whole test: only a refresh this test causes shows."""
    settings = make_settings(paper_url, database_url, redis_url, account_streamer=False)
    risk = RiskSettings(state_ttl_seconds=60, max_state_age_seconds=120, quote_ttl_seconds=60)
    return settings.model_copy(update={"risk": risk})


@pytest.fixture
async def state(
    paper_broker: Any, database_url: str, redis_url: str, redis_client: Redis
) -> AsyncIterator[StateSource]:
    settings = slow_state_settings(paper_broker.url, database_url, redis_url)
    async with aiohttp.ClientSession() as session:
        source = StateSource(session, redis_client, settings, Metrics.create())
        yield source
        await source.aclose()


async def place_at_broker(
    paper_http: aiohttp.ClientSession, auth: dict[str, str], account: str, body: dict[str, Any]
) -> str:
    async with paper_http.post(f"/accounts/{account}/orders", json=body, headers=auth) as answer:
        assert answer.status == 201, await answer.text()
        return str((await answer.json())["data"]["order"]["id"])


async def test_order_forwarded_returns_at_once_and_the_cache_shows_the_order_soon(
    state: StateSource,
    paper_broker: Any,
    paper_http: aiohttp.ClientSession,
    paper_auth: dict[str, str],
    redis_client: Redis,
) -> None:
    account = paper_broker.account_number
    await state.account(account, paper_auth)  # warm
    order_id = await place_at_broker(paper_http, paper_auth, account, order("AAPL", 1, "1.00"))
    # The broker is slow to answer the refresh (2 s): order_forwarded must not wait for it.
    fault = {"path": f"/accounts/{account}/balances", "delay": 2.0, "times": 1}
    async with paper_http.put("/__paper/faults", json=fault) as response:
        assert response.status == 200
    # Synchronous (nothing to await: it cannot wait for the refresh) and quick: it returns
    # well within the refresh's 2 s, even on a machine three times slower than usual.
    forwarded: Callable[..., object] = state.order_forwarded  # whatever it returns
    assert not inspect.iscoroutinefunction(forwarded)
    started = time.perf_counter()
    assert forwarded(account, paper_auth) is None  # not an awaitable (a task, a future)
    assert time.perf_counter() - started < 0.5
    # Meanwhile the cached state still serves at once: without the order (the refresh that
    # would show it takes 2 s), and well before the refresh could have ended.
    payloads = await state.account(account, paper_auth)
    assert time.perf_counter() - started < 1.5
    assert order_id not in {str(o.get("id")) for o in payloads.live_orders}

    async def shown() -> bool:
        return order_id in await cached_order_ids(redis_client, account)

    await eventually(shown)
    await eventually(lambda: _idle(state))
    await clear_broker_log(paper_http)
    payloads = await state.account(account, paper_auth)
    assert order_id in {str(o.get("id")) for o in payloads.live_orders}
    assert state_reads(await broker_log(paper_http), account) == []


async def test_order_forwarded_during_a_refresh_fetches_again_after_it(
    state: StateSource,
    paper_broker: Any,
    paper_http: aiohttp.ClientSession,
    paper_auth: dict[str, str],
    redis_client: Redis,
) -> None:
    """A refresh begun before the order may not show it: one more follows (single flight)."""
    account = paper_broker.account_number
    await state.account(account, paper_auth)
    fault = {"path": f"/accounts/{account}/orders/live", "delay": 0.3, "times": 1, "after": True}
    async with paper_http.put("/__paper/faults", json=fault) as response:
        assert response.status == 200
    await clear_broker_log(paper_http)
    state.refresh_soon(account, paper_auth)  # reads /orders/live before the order is placed
    await eventually(lambda: _seen(paper_http, f"GET /accounts/{account}/orders/live"))
    order_id = await place_at_broker(paper_http, paper_auth, account, order("AAPL", 1, "1.00"))
    state.order_forwarded(account, paper_auth)
    state.order_forwarded(account, paper_auth)  # joins the one queued: no third refresh

    async def shown() -> bool:
        return order_id in await cached_order_ids(redis_client, account)

    await eventually(shown)
    await eventually(lambda: _idle(state))
    reads = [line for line in await broker_log(paper_http) if line.endswith("/balances")]
    assert len(reads) == 2, reads


async def _seen(paper_http: aiohttp.ClientSession, line: str) -> bool:
    return line in await broker_log(paper_http)


async def _idle(state: StateSource) -> bool:
    return not state._refreshes.running()


async def test_a_failed_background_refresh_is_logged_without_the_token_and_never_raises(
    state: StateSource,
    paper_broker: Any,
    paper_http: aiohttp.ClientSession,
    paper_auth: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    account = paper_broker.account_number
    await state.account(account, paper_auth)
    fault = {"path": f"/accounts/{account}/positions", "status": 500}
    async with paper_http.put("/__paper/faults", json=fault) as response:
        assert response.status == 200
    caplog.set_level(logging.WARNING, logger="gatekeeper.adapters.account_state")
    state.order_forwarded(account, paper_auth)

    async def logged() -> bool:
        return any("background refresh" in r.getMessage() for r in caplog.records)

    await eventually(logged)
    token = paper_auth["Authorization"].split()[1]
    assert all(token not in r.getMessage() for r in caplog.records)
    # The state still serves (young enough), and nothing was raised into the caller.
    assert (await state.account(account, paper_auth)).balances
    state.order_forwarded(account, {})  # no credential: nothing to fetch with, no error


async def test_a_stale_state_is_still_refreshed_before_deciding(
    paper_broker: Any,
    paper_http: aiohttp.ClientSession,
    paper_auth: dict[str, str],
    database_url: str,
    redis_url: str,
    redis_client: Redis,
) -> None:
    """Streamed or background updates do not make a state younger: past state_ttl_seconds
    the next read waits for the broker, as before."""
    # A TTL of 2 s: the fetch, the edit 0.5 s later and the read of the edit end well before
    # the state is 1.5 s old (REFRESH_AHEAD: a read would refresh it in the background), even
    # on a machine three times slower than usual.
    ttl = 2.0
    settings = make_settings(paper_broker.url, database_url, redis_url).model_copy(
        update={"risk": RiskSettings(state_ttl_seconds=ttl, max_state_age_seconds=10)}
    )
    account = paper_broker.account_number
    async with aiohttp.ClientSession() as session:
        state = StateSource(session, redis_client, settings, Metrics.create())
        try:
            first = await state.account(account, paper_auth)
            fetched_by = time.time()
            await asyncio.sleep(0.5)  # the edit comes well after the fetch
            changed = await state.update_cached(account, lambda e: {**e, "positions": []})
            assert changed
            assert (await state.account(account, paper_auth)).positions == []
            # Past state_ttl_seconds since the fetch, though not since the edit.
            await asyncio.sleep(max(0.0, fetched_by + ttl + 0.05 - time.time()))
            await clear_broker_log(paper_http)
            before = time.time()
            payloads = await state.account(account, paper_auth)
            assert payloads.age_seconds <= time.time() - before  # fetched during this read
            assert payloads.positions == first.positions  # the broker's, not the edit
            assert len(state_reads(await broker_log(paper_http), account)) == 4
        finally:
            await state.aclose()


async def test_a_warm_accounts_repeated_symbol_needs_no_quote_from_the_broker(
    state: StateSource,
    paper_broker: Any,
    paper_http: aiohttp.ClientSession,
    paper_auth: dict[str, str],
) -> None:
    account = paper_broker.account_number
    payloads = await state.account(account, paper_auth)
    first = await state.quotes([("Equity", "AAPL")], paper_auth, payloads, account)
    assert [q["symbol"] for q in first] == ["AAPL"]
    await clear_broker_log(paper_http)
    payloads = await state.account(account, paper_auth)
    again = await state.quotes([("Equity", "AAPL")], paper_auth, payloads, account)
    assert again == first
    assert await broker_log(paper_http) == []


async def test_no_broker_read_between_two_orders_of_a_warm_account(
    paper_broker: Any,
    paper_http: aiohttp.ClientSession,
    paper_auth: dict[str, str],
    database_url: str,
    redis_url: str,
    redis_client: Redis,
    pg_pool: asyncpg.Pool,
) -> None:
    settings = slow_state_settings(paper_broker.url, database_url, redis_url)
    account = paper_broker.account_number
    await protect(pg_pool, account)
    async with start_gatekeeper(settings) as gate, aiohttp.ClientSession() as session:
        bot = Bot(gate.proxy_url, paper_auth, session, account)
        first = await bot.place(order("AAPL", 1, "1.00"))
        assert first.status == 201, first.body
        first_id = str(first.body["data"]["order"]["id"])

        async def shown() -> bool:
            return first_id in await cached_order_ids(redis_client, account)

        await eventually(shown)
        await clear_broker_log(paper_http)
        second = await bot.place(order("AAPL", 1, "1.00"))
        assert second.status == 201, second.body
        lines = await broker_log(paper_http)
        forwarded = lines.index(f"POST /accounts/{account}/orders")
        before = lines[:forwarded]
        assert state_reads(before, account) == [], before
        # Nor any other read (quotes, instruments, start of day): the order waited for none.
        assert before == [], before


async def test_an_accepted_orders_answer_puts_it_in_the_cached_state_before_any_refresh(
    paper_broker: Any,
    paper_http: aiohttp.ClientSession,
    paper_auth: dict[str, str],
    database_url: str,
    redis_url: str,
    redis_client: Redis,
    pg_pool: asyncpg.Pool,
) -> None:
    """The broker's answer names the order it placed: it is in the cached state at once (the
    next decision sees it there, so its reservation ends), with no broker read for it."""
    settings = slow_state_settings(paper_broker.url, database_url, redis_url)
    risk = settings.risk.model_copy(update={"refresh_after_forward_seconds": 30.0})
    settings = settings.model_copy(update={"risk": risk})
    account = paper_broker.account_number
    await protect(pg_pool, account)
    async with start_gatekeeper(settings) as gate, aiohttp.ClientSession() as session:
        bot = Bot(gate.proxy_url, paper_auth, session, account)
        first = await bot.place(order("AAPL", 1, "1.00"))  # warms; its refresh starts now
        assert first.status == 201, first.body
        await asyncio.sleep(0.5)  # that refresh done; the next one waits 30 s
        await clear_broker_log(paper_http)
        placed = await bot.place(order("AAPL", 2, "1.00"))
        assert placed.status == 201, placed.body
        order_id = str(placed.body["data"]["order"]["id"])
        assert placed.body["data"]["order"]["status"] in ("Received", "Routed", "Live")

        async def shown() -> bool:
            return order_id in await cached_order_ids(redis_client, account)

        await eventually(shown, seconds=2.0)
        lines = await broker_log(paper_http)
        assert state_reads(lines, account) == [], lines


async def test_forwards_within_the_interval_share_one_background_refresh(
    paper_broker: Any,
    paper_http: aiohttp.ClientSession,
    paper_auth: dict[str, str],
    database_url: str,
    redis_url: str,
    redis_client: Redis,
) -> None:
    # An interval of 1.5 s: the 20 forwards below (0.2 s on an idle machine) all come within
    # it even on a machine three times slower than usual.
    settings = slow_state_settings(paper_broker.url, database_url, redis_url)
    risk = settings.risk.model_copy(update={"refresh_after_forward_seconds": 1.5})
    settings = settings.model_copy(update={"risk": risk})
    account = paper_broker.account_number
    async with aiohttp.ClientSession() as session:
        state = StateSource(session, redis_client, settings, Metrics.create())
        try:
            await state.account(account, paper_auth)
            await clear_broker_log(paper_http)
            started = time.monotonic()
            for _ in range(20):  # a busy bot: 20 forwards, 10 ms apart
                state.order_forwarded(account, paper_auth)
                await asyncio.sleep(0.01)
            await eventually(lambda: _idle(state))
            # the first forward's refresh at once; one more, 1.5 s after it began, for the rest
            reads = [ln for ln in await broker_log(paper_http) if ln.endswith("/balances")]
            assert len(reads) == 2, reads
            assert time.monotonic() - started >= 1.5
        finally:
            await state.aclose()


async def test_an_update_never_overwrites_another_replicas_newer_entry(
    paper_broker: Any, paper_auth: dict[str, str], database_url: str, redis_client: Redis
) -> None:
    """update_cached replaces the entry in one round trip only while it is still the version
    this replica last saw; when another replica wrote meanwhile, the change is applied to
    what is there now (both changes kept), and a change that needs no write writes none."""
    settings = slow_state_settings(paper_broker.url, database_url, "redis://unused")
    account = paper_broker.account_number
    key = STATE_KEY.format(account=account)

    def tagged(tag: str) -> Callable[[dict[str, Any]], dict[str, Any] | None]:
        def change(entry: dict[str, Any]) -> dict[str, Any] | None:
            tags = entry.get("tags", [])
            return None if tag in tags else {**entry, "tags": [*tags, tag]}

        return change

    async def tags() -> list[str]:
        raw: Any = await redis_client.get(key)
        return list(json.loads(raw)["tags"])

    async with aiohttp.ClientSession() as session:
        one = StateSource(session, redis_client, settings, Metrics.create())
        two = StateSource(session, redis_client, settings, Metrics.create())
        try:
            await one.account(account, paper_auth)  # fetched and cached: one knows it
            await two.account(account, paper_auth)  # read: two knows the same version
            await redis_client.script_flush()
            assert await one.update_cached(account, tagged("a"))  # one round trip:
            assert await redis_client.script_exists(REPLACE_SHA) == [True]  # compare-and-set
            assert await two.update_cached(account, tagged("b"))  # two's version is old
            assert await tags() == ["a", "b"]
            assert await one.update_cached(account, tagged("c"))  # one's version is old too
            assert await tags() == ["a", "b", "c"]
            before = await redis_client.pttl(key)
            assert not await two.update_cached(account, tagged("c"))  # nothing to change
            assert await tags() == ["a", "b", "c"]
            assert 0 < await redis_client.pttl(key) <= before  # expires when it would have
        finally:
            await one.aclose()
            await two.aclose()


async def test_an_update_works_where_the_server_runs_no_scripts(
    paper_broker: Any, paper_auth: dict[str, str], database_url: str, redis_url: str,
    redis_client: Redis,
) -> None:  # fmt: skip
    """A Redis user denied scripting (an ACL, as some managed services set): the update is
    written with WATCH/MULTI instead, nothing lost."""
    user = f"noscripts-{uuid.uuid4().hex[:8]}"
    await redis_client.acl_setuser(
        user, enabled=True, passwords=["+pw"], keys=["*"], commands=["+@all", "-@scripting"]
    )
    limited = Redis.from_url(redis_url.replace("redis://", f"redis://{user}:pw@", 1))
    settings = slow_state_settings(paper_broker.url, database_url, redis_url)
    account = paper_broker.account_number
    try:
        async with aiohttp.ClientSession() as session:
            source = StateSource(session, limited, settings, Metrics.create())
            try:
                await source.account(account, paper_auth)
                assert await source.update_cached(
                    account, lambda entry: {**entry, "tags": ["written"]}
                )
            finally:
                await source.aclose()
        raw: Any = await redis_client.get(STATE_KEY.format(account=account))
        assert json.loads(raw)["tags"] == ["written"]
    finally:
        await limited.aclose()
        await redis_client.acl_deluser(user)


async def test_answers_that_arrive_while_one_is_written_share_the_next_write(
    state: StateSource, paper_broker: Any, paper_auth: dict[str, str], redis_client: Redis
) -> None:
    """A busy account's answers are written one update at a time: those that arrive while
    one is written go together in the next, none is lost."""
    account = paper_broker.account_number
    await state.account(account, paper_auth)  # cached, and known to this process

    def answer(order_id: int) -> dict[str, Any]:  # the answer's data (UpstreamAnswer.data)
        placed = {"id": order_id, "account-number": account, "status": "Live", "legs": []}
        return {"order": placed}

    async def writes() -> int:  # state writes that took effect (a NOSCRIPT reply is failed)
        stats = await redis_client.info("commandstats")
        done = [stats.get(f"cmdstat_{c}", {}) for c in ("evalsha", "exec")]
        return sum(c.get("calls", 0) - c.get("failed_calls", 0) for c in done)

    before = await writes()
    for order_id in range(900_001, 900_013):  # twelve answers in one turn of the loop
        state.order_forwarded(account, {}, answer(order_id))  # no credential: no refresh

    async def all_shown() -> bool:
        shown = await cached_order_ids(redis_client, account)
        return {str(i) for i in range(900_001, 900_013)} <= shown

    await eventually(all_shown)
    assert await writes() - before == 1
