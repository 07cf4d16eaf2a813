"""Start of day from the broker, through the proxy against the paper broker: the broker's
beginning-of-day snapshot is the daily-loss baseline (a loss before the first order counts),
the day's deposits and withdrawals are not P&L, and the first sight stands in (with a note)
only while the broker has no snapshot; once it has one, the broker's figure wins."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import aiohttp
import asyncpg
import pytest
import redis.asyncio as aioredis

from gatekeeper.core.tradingday import trading_day
from gatekeeper.settings import RiskSettings
from tests.fixtures.gate import Gate, make_settings, start_gatekeeper
from tests.fixtures.orders import Bot, cached_nlv, order, protect, received_count, state_shows
from tests.fixtures.paper import PaperBroker


def today() -> str:
    return trading_day(datetime.now(UTC)).isoformat()


def move_prices(broker: PaperBroker, *, bil: str, tqqq: str) -> None:
    """Quote BIL (410 held) and TQQQ (100 held) at these mids (0.02 and 0.10 wide)."""
    book = broker.book
    book.set_quote("BIL", Decimal(bil) - Decimal("0.01"), Decimal(bil) + Decimal("0.01"))
    book.set_quote("TQQQ", Decimal(tqqq) - Decimal("0.05"), Decimal(tqqq) + Decimal("0.05"))


async def deposit(
    http: aiohttp.ClientSession, account: str, amount: str, sub_type: str | None = None
) -> dict[str, Any]:
    path = f"/__paper/accounts/{account}/money-movements"
    body = {"amount": amount} if sub_type is None else {"amount": amount, "sub-type": sub_type}
    async with http.post(path, json=body) as response:
        assert response.status == 201, await response.text()
        data: dict[str, Any] = (await response.json())["data"]
        return data


async def last_detail(pool: asyncpg.Pool) -> dict[str, Any]:
    detail: dict[str, Any] = json.loads(
        await pool.fetchval("SELECT detail FROM risk_decisions ORDER BY id DESC LIMIT 1")
    )
    return detail


async def day_start_rows(pool: asyncpg.Pool) -> list[tuple[str, Decimal, Decimal]]:
    rows = await pool.fetch(
        "SELECT source, net_liquidating_value, net_deposits_at_start FROM account_day_start"
        " ORDER BY recorded_at"
    )
    return [(r["source"], r["net_liquidating_value"], r["net_deposits_at_start"]) for r in rows]


@pytest.fixture
async def quick_gatekeeper(
    paper_broker: PaperBroker, database_url: str, redis_url: str
) -> AsyncIterator[Gate]:
    """The gatekeeper with short start-of-day caches: money movements 0.3 s, a missing
    snapshot asked again after 0.3 s."""
    base = make_settings(paper_broker.url, database_url, redis_url)
    risk = RiskSettings(money_movements_ttl_seconds=0.3, start_of_day_retry_seconds=0.3)
    async with start_gatekeeper(base.model_copy(update={"risk": risk})) as gate:
        yield gate


@pytest.fixture
async def quick_bot(
    paper_broker: PaperBroker, quick_gatekeeper: Gate, paper_auth: dict[str, str]
) -> AsyncIterator[Bot]:
    async with aiohttp.ClientSession() as session:
        yield Bot(quick_gatekeeper.proxy_url, paper_auth, session, paper_broker.account_number)


async def test_a_loss_before_the_first_order_stops_the_first_order_at_the_broker_bod(
    bot: Bot, pg_pool: asyncpg.Pool, paper_broker: PaperBroker
) -> None:
    protection = await protect(pg_pool, bot.account)
    # The broker's morning snapshot says 100,000.00; before the bot's first order the account
    # falls to 94,500.00 (BIL 83.50 -> 70.00, TQQQ 49.35 -> 49.70).
    move_prices(paper_broker, bil="70.00", tqqq="49.70")

    answer = await bot.place(order("AAPL", 1, "150.00"))

    assert answer.status == 422, answer.body
    assert answer.codes == ["max_daily_loss"]
    message = answer.body["error"]["message"]
    assert "day P&L -5.50%" in message
    assert "NLV 94,500.00 vs start of day 100,000.00" in message
    assert received_count(paper_broker.book, bot.account) == 0
    reason = await pg_pool.fetchval(
        "SELECT emergency_stop_reason FROM portfolio_protections WHERE id = $1", protection.id
    )
    assert reason == (
        "max_daily_loss: day P&L -5.50% reached the -5.00% limit "
        "(NLV 94,500.00, start of day 100,000.00)"
    )
    assert await day_start_rows(pg_pool) == [("broker_bod", Decimal("100000.00"), Decimal(0))]
    notes = await pg_pool.fetchval("SELECT notes FROM risk_decisions")
    assert "start_of_day_first_sight" not in notes
    # Asked once, for the New York trading day; a second order does not ask again.
    await bot.place(order("AAPL", 1, "150.00"))
    asked = [
        r.raw_path for r in paper_broker.book.seen_requests() if "balance-snapshots" in r.raw_path
    ]
    assert len(asked) == 1
    assert f"snapshot-date={today()}" in asked[0]
    assert "time-of-day=BOD" in asked[0]


async def test_a_deposit_does_not_mask_a_trading_loss(
    bot: Bot, pg_pool: asyncpg.Pool, paper_broker: PaperBroker, paper_http: aiohttp.ClientSession
) -> None:
    await protect(pg_pool, bot.account)
    moved = await deposit(paper_http, bot.account, "10000.00")
    assert moved["transaction"]["transaction-sub-type"] == "Deposit"
    # Trading loses 5,800.00 (BIL -> 70.00, TQQQ -> 46.70): NLV 104,200.00 with the deposit.
    move_prices(paper_broker, bil="70.00", tqqq="46.70")

    answer = await bot.place(order("AAPL", 1, "150.00"))

    assert answer.status == 422, answer.body
    assert answer.codes == ["max_daily_loss"]
    message = answer.body["error"]["message"]
    assert "day P&L -5.80%" in message
    assert "start of day 100,000.00, net deposits today 10,000.00" in message
    assert received_count(paper_broker.book, bot.account) == 0
    reason = await pg_pool.fetchval("SELECT emergency_stop_reason FROM portfolio_protections")
    assert "-5.80%" in reason
    assert "net deposits today 10,000.00" in reason


async def test_a_withdrawal_is_not_a_loss(
    bot: Bot, pg_pool: asyncpg.Pool, paper_broker: PaperBroker, paper_http: aiohttp.ClientSession
) -> None:
    await protect(pg_pool, bot.account)
    await deposit(paper_http, bot.account, "-10000.00")  # NLV 90,000.00: -10 % if it were P&L

    answer = await bot.place(order("AAPL", 1, "150.00"))

    assert answer.status == 201, answer.body
    assert Decimal((await last_detail(pg_pool))["figures"]["day_pnl_pct"]) == 0


@pytest.mark.parametrize(
    ("sub_type", "amount"),
    [("Mark to Market", "-6000.00"), ("Fee", "-6000.00"), ("Debit Interest", "-6000.00")],
)
async def test_money_movements_that_are_gains_or_losses_stay_in_the_day_pnl(
    bot: Bot,
    pg_pool: asyncpg.Pool,
    paper_broker: PaperBroker,
    paper_http: aiohttp.ClientSession,
    sub_type: str,
    amount: str,
) -> None:
    # A future's daily settlement, a fee or interest is the account's own loss, not a
    # withdrawal: netting it out would hide it.
    await protect(pg_pool, bot.account)
    await deposit(paper_http, bot.account, amount, sub_type)

    answer = await bot.place(order("AAPL", 1, "150.00"))

    assert answer.status == 422, answer.body
    assert answer.codes == ["max_daily_loss"]
    assert "day P&L -6.00%" in answer.body["error"]["message"]


@pytest.mark.parametrize("missing", ["404", "no items"])
async def test_without_a_broker_snapshot_the_first_sight_stands_in_with_a_note(
    bot: Bot, pg_pool: asyncpg.Pool, paper_broker: PaperBroker, missing: str, redis_url: str
) -> None:
    await protect(pg_pool, bot.account)
    book = paper_broker.book
    if missing == "404":
        book.add_fault(f"/accounts/{bot.account}/balance-snapshots", status=404)
    else:
        del book.start_of_day[bot.account]
    move_prices(paper_broker, bil="70.00", tqqq="49.70")  # 94,500.00, unseen by the broker

    first = await bot.place(order("AAPL", 1, "150.00"))

    assert first.status == 201, first.body
    assert await day_start_rows(pg_pool) == [("first_sight", Decimal("94500.00"), Decimal(0))]
    notes = await pg_pool.fetchval("SELECT notes FROM risk_decisions")
    assert notes == ["start_of_day_first_sight"]
    (note,) = (await last_detail(pg_pool))["notes"]
    assert note["message"] == (
        "start_of_day_first_sight: the broker has no beginning-of-day snapshot for today;"
        " start of day 94,500.00 is the NLV at the day's first decision"
    )
    # A loss from there is measured against the first sight.
    before = await cached_nlv(redis_url, bot.account)
    move_prices(paper_broker, bil="58.00", tqqq="49.70")  # -4,920.00: -5.21 %
    await state_shows(redis_url, bot.account, not_nlv=before)
    second = await bot.place(order("AAPL", 1, "150.00"))
    assert second.status == 422
    assert "start of day 94,500.00" in second.body["error"]["message"]


async def test_a_broker_snapshot_that_appears_later_in_the_day_wins(
    quick_bot: Bot, pg_pool: asyncpg.Pool, paper_broker: PaperBroker
) -> None:
    bot = quick_bot
    await protect(pg_pool, bot.account)
    book = paper_broker.book
    bod = book.start_of_day.pop(bot.account)  # the broker has none yet
    move_prices(paper_broker, bil="70.00", tqqq="49.70")  # 94,500.00
    assert (await bot.place(order("AAPL", 1, "150.00"))).status == 201

    book.start_of_day[bot.account] = bod  # the snapshot arrives: 100,000.00
    await asyncio.sleep(0.4)  # start_of_day_retry_seconds
    answer = await bot.place(order("AAPL", 1, "150.00"))

    assert answer.status == 422, answer.body
    assert answer.codes == ["max_daily_loss"]
    assert "start of day 100,000.00" in answer.body["error"]["message"]
    # Append-only: the first sight stays, the broker's row is added and wins.
    rows = await day_start_rows(pg_pool)
    assert rows == [
        ("first_sight", Decimal("94500.00"), Decimal(0)),
        ("broker_bod", Decimal("100000.00"), Decimal(0)),
    ]
    notes = await pg_pool.fetch("SELECT notes FROM risk_decisions ORDER BY id")
    assert [list(n["notes"]) for n in notes] == [["start_of_day_first_sight"], []]


async def test_deposits_arriving_intraday_are_seen_within_the_cache_ttl(
    quick_bot: Bot,
    pg_pool: asyncpg.Pool,
    paper_broker: PaperBroker,
    paper_http: aiohttp.ClientSession,
    redis_client: aioredis.Redis,
) -> None:
    bot = quick_bot
    await protect(pg_pool, bot.account)
    started = time.monotonic()
    assert (await bot.place(order("AAPL", 1, "150.00"))).status == 201
    key = f"gk:money-movements:v1:{bot.account}:{today()}"
    ttl = await redis_client.pttl(key)
    # Cached, never forever (-1). On a slow day the order itself can outlast the 0.3 s entry,
    # which is then gone (-2); within 0.25 s of sending it must still be there.
    if time.monotonic() - started < 0.25:
        assert 0 < ttl <= 300
    else:
        assert ttl == -2 or 0 < ttl <= 300, ttl
    await deposit(paper_http, bot.account, "10000.00")
    move_prices(paper_broker, bil="70.00", tqqq="46.70")  # -5,800.00 of trading

    await asyncio.sleep(0.4)
    answer = await bot.place(order("AAPL", 1, "150.00"))

    assert answer.status == 422, answer.body
    assert "day P&L -5.80%" in answer.body["error"]["message"]


async def test_a_first_sight_keeps_the_deposits_it_already_contains(
    bot: Bot, pg_pool: asyncpg.Pool, paper_broker: PaperBroker, paper_http: aiohttp.ClientSession
) -> None:
    await protect(pg_pool, bot.account)
    del paper_broker.book.start_of_day[bot.account]
    await deposit(paper_http, bot.account, "10000.00")  # before the first sight: in its NLV

    answer = await bot.place(order("AAPL", 1, "150.00"))

    assert answer.status == 201, answer.body
    assert await day_start_rows(pg_pool) == [
        ("first_sight", Decimal("110000.00"), Decimal("10000.0000"))
    ]
    assert Decimal((await last_detail(pg_pool))["figures"]["day_pnl_pct"]) == 0


@pytest.mark.parametrize("endpoint", ["balance-snapshots", "transactions"])
async def test_the_start_of_day_unavailable_fails_closed(
    bot: Bot, pg_pool: asyncpg.Pool, paper_broker: PaperBroker, endpoint: str
) -> None:
    await protect(pg_pool, bot.account)
    paper_broker.book.add_fault(f"/accounts/{bot.account}/{endpoint}", status=500)

    answer = await bot.place(order("AAPL", 1, "150.00"))

    assert answer.status == 503, answer.body
    assert answer.codes == ["state_unavailable"]
    assert "start of the trading day" in answer.body["error"]["message"]
    assert received_count(paper_broker.book, bot.account) == 0
    # Nothing stands in for what could not be read (the broker's snapshot, when it could be
    # read, is recorded: it is the day's).
    expected = [] if endpoint == "balance-snapshots" else [("broker_bod",)]
    sources = await pg_pool.fetch("SELECT source FROM account_day_start")
    assert [tuple(row) for row in sources] == expected


async def test_deposits_are_served_from_memory_until_their_cached_entry_expires(
    paper_broker: PaperBroker,
    paper_auth: dict[str, str],
    pg_pool: asyncpg.Pool,
    redis_client: aioredis.Redis,
    database_url: str,
    redis_url: str,
) -> None:
    """The deposits entry names when it expires: a replica serves it from memory until that
    moment (no Redis round trip per order), never after; an entry without it (written by an
    older gatekeeper) is read from Redis each time."""
    account = paper_broker.account_number
    await protect(pg_pool, account)
    key = f"gk:money-movements:v1:{account}:{today()}"

    async def day_pnl() -> Decimal:
        answer = await bot.place(order("AAPL", 1, "150.00"), dry_run=True)
        assert answer.status < 300, answer.body
        return Decimal((await last_detail(pg_pool))["figures"]["day_pnl_pct"])

    await redis_client.set(key, "2500.00", px=60_000)  # an older gatekeeper's entry
    base = make_settings(paper_broker.url, database_url, redis_url)
    async with start_gatekeeper(base) as gate, aiohttp.ClientSession() as session:
        bot = Bot(gate.proxy_url, paper_auth, session, account)
        assert await day_pnl() == Decimal("-2.5")  # NLV unchanged, 2,500 of it deposited
        # Another replica's entry, for 3 s: longer than the next two orders take, even on a
        # machine three times slower than usual.
        window = 3.0
        expires = datetime.now(UTC).timestamp() + window
        await redis_client.set(key, f"4000.00|{expires:.3f}", px=int(window * 1000))
        assert await day_pnl() == Decimal("-4")  # the old entry was not kept in memory
        await redis_client.delete(key)  # gone from Redis: this process still knows it
        assert await day_pnl() == Decimal("-4")
        await asyncio.sleep(max(0.0, expires - datetime.now(UTC).timestamp()) + 0.05)
        assert await day_pnl() == 0  # expired: asked the broker (no deposits today)
        cached: Any = await redis_client.get(key)  # bytes (the client decodes nothing)
        assert cached is not None
        assert cached.startswith(b"0|")  # cached with its expiry
        assert 0 < await redis_client.pttl(key) <= 30_000
