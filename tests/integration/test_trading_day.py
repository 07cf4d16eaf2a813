"""The trading day across New York midnight and both DST changes of 2026, on the real
database: the day is the America/New_York date of the database's clock (injected here through
``decision_inputs(clock=...)``), and the trade count and the start-of-day baseline switch
exactly once, at 00:00:00.000 New York time; 23:59:59.999 still belongs to the day before."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import aiohttp
import asyncpg
import pytest

from gatekeeper.adapters import decisions as db
from gatekeeper.adapters.day_start import DayStart, DayStartSource
from gatekeeper.core.tradingday import NEW_YORK, trading_day
from gatekeeper.metrics import Metrics
from tests.fixtures.gate import make_settings
from tests.fixtures.paper import PaperBroker

ACCOUNT = "5WT00001"


def ny(day: date, hour: int, minute: int, second: int, ms: int = 0, *, fold: int = 0) -> datetime:
    """A New York wall-clock time as an aware UTC instant (``fold=1``: the repeated hour's
    second pass, in November)."""
    local = datetime(
        day.year, day.month, day.day, hour, minute, second, ms * 1000, tzinfo=NEW_YORK, fold=fold
    )
    return local.astimezone(UTC)


@dataclass(frozen=True)
class Seen:
    """What one decision at ``at`` saw."""

    at: datetime
    day: date
    trades_today: int
    start_of_day: Decimal
    source: str | None


async def decide_at(conn: asyncpg.Connection, at: datetime, nlv: Decimal) -> Seen:
    """One decision as the engine makes it (lock, inputs, an allowed one-trade row), at
    ``at`` by the database's clock."""
    async with conn.transaction():
        await db.lock_account(conn, ACCOUNT)
        inputs = await db.decision_inputs(
            conn, ACCOUNT, nlv, hold=True, seen_order_ids=(), clock=at
        )
        await db.insert_decision(
            conn,
            db.DecisionRow(
                decision_id=uuid.uuid4(),
                account_id=ACCOUNT,
                route_kind="place",
                verdict="allow",
                codes=[],
                notes=[],
                message="allowed",
                detail={},
                trading_day=inputs.trading_day,
                trade_count=1,
                reserved_orders=[],
                replaces_order_id=None,
                latency_ms=1.0,
            ),
        )
    return Seen(
        at,
        inputs.trading_day,
        inputs.reservations.trades_today,
        inputs.start_of_day_nlv,
        inputs.start_of_day_source,
    )


def switches(values: list[Any]) -> list[int]:
    """Indexes where the value differs from the one before."""
    return [i for i in range(1, len(values)) if values[i] != values[i - 1]]


# A day D and the instants that sweep it, from the last millisecond of the day before to the
# first of the day after, through its DST change when it has one.
ORDINARY = date(2026, 6, 15)
SPRING = date(2026, 3, 8)  # 02:00 EST -> 03:00 EDT: a 23-hour day
AUTUMN = date(2026, 11, 1)  # 02:00 EDT -> 01:00 EST: a 25-hour day
SWEEPS: Mapping[date, list[datetime]] = {
    ORDINARY: [
        ny(ORDINARY - timedelta(days=1), 23, 59, 59, 999),
        ny(ORDINARY, 0, 0, 0, 0),
        ny(ORDINARY, 12, 0, 0),
        ny(ORDINARY, 23, 59, 59, 999),
        ny(ORDINARY + timedelta(days=1), 0, 0, 0, 0),
    ],
    SPRING: [
        ny(SPRING - timedelta(days=1), 23, 59, 59, 999),
        ny(SPRING, 0, 0, 0, 0),
        ny(SPRING, 1, 59, 59, 999),  # EST
        ny(SPRING, 3, 0, 0, 0),  # the next millisecond, EDT
        ny(SPRING, 23, 59, 59, 999),
        ny(SPRING + timedelta(days=1), 0, 0, 0, 0),
    ],
    AUTUMN: [
        ny(AUTUMN - timedelta(days=1), 23, 59, 59, 999),
        ny(AUTUMN, 0, 0, 0, 0),
        ny(AUTUMN, 1, 30, 0, fold=0),  # EDT
        ny(AUTUMN, 1, 30, 0, fold=1),  # an hour later, EST
        ny(AUTUMN, 23, 59, 59, 999),
        ny(AUTUMN + timedelta(days=1), 0, 0, 0, 0),
    ],
}
HOURS = {ORDINARY: 24, SPRING: 23, AUTUMN: 25}


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(database_url)
    try:
        yield connection
    finally:
        await connection.close()


@pytest.mark.parametrize("day", list(SWEEPS), ids=str)
async def test_counters_and_first_sight_baselines_switch_exactly_once_at_each_midnight(
    conn: asyncpg.Connection, day: date
) -> None:
    instants = SWEEPS[day]
    start, end = instants[1], instants[-1]
    assert end - start == timedelta(hours=HOURS[day])  # the DST days are 23 and 25 hours long
    assert end - instants[0] == timedelta(hours=HOURS[day], milliseconds=1)

    seen = [
        await decide_at(conn, at, Decimal(100_000 + 1_000 * i)) for i, at in enumerate(instants)
    ]

    last = len(instants) - 1
    before, after = day - timedelta(days=1), day + timedelta(days=1)
    assert [s.day for s in seen] == [before] + [day] * (last - 1) + [after]
    assert [s.day for s in seen] == [trading_day(at) for at in instants]
    # 23:59:59.999 counts for its day; 00:00:00.000 starts a new count...
    assert [s.trades_today for s in seen] == [0, *range(last - 1), 0]
    # ... and a new baseline: the first sight of the day, kept all day.
    assert [s.start_of_day for s in seen] == [
        Decimal(100_000),
        *[Decimal(101_000)] * (last - 1),
        Decimal(100_000 + 1_000 * last),
    ]
    assert switches([s.day for s in seen]) == [1, last]
    assert switches([s.start_of_day for s in seen]) == [1, last]
    assert {s.source for s in seen} == {"first_sight"}
    counted = await conn.fetch(
        "SELECT trading_day, sum(trade_count) AS n FROM risk_decisions GROUP BY 1 ORDER BY 1"
    )
    assert [(r["trading_day"], r["n"]) for r in counted] == [
        (before, 1),
        (day, last - 1),
        (after, 1),
    ]


@pytest.mark.parametrize("day", list(SWEEPS), ids=str)
async def test_the_brokers_baseline_is_the_one_of_the_new_day_from_midnight(
    conn: asyncpg.Connection, day: date
) -> None:
    instants = SWEEPS[day]
    before, after = day - timedelta(days=1), day + timedelta(days=1)
    for each, nlv in ((before, "90000"), (day, "95000"), (after, "99000")):
        await db.record_broker_start_of_day(conn, ACCOUNT, each, Decimal(nlv))

    seen = [await decide_at(conn, at, Decimal(50_000)) for at in instants]

    last = len(instants) - 1
    assert [s.start_of_day for s in seen] == [
        Decimal(90_000),
        *[Decimal(95_000)] * (last - 1),
        Decimal(99_000),
    ]
    assert {s.source for s in seen} == {"broker_bod"}
    assert switches([s.start_of_day for s in seen]) == [1, last]
    # No first sight is recorded while the broker's figure exists.
    assert (
        await conn.fetchval("SELECT count(*) FROM account_day_start WHERE source = 'first_sight'")
        == 0
    )


async def test_inputs_gathered_for_another_day_record_nothing(conn: asyncpg.Connection) -> None:
    midnight = ny(SPRING, 0, 0, 0, 0)
    async with conn.transaction():
        with pytest.raises(db.TradingDayChanged) as changed:
            await db.decision_inputs(
                conn,
                ACCOUNT,
                Decimal(100_000),
                hold=True,
                seen_order_ids=(),
                day=SPRING - timedelta(days=1),
                clock=midnight,
            )
    assert (changed.value.expected, changed.value.actual) == (SPRING - timedelta(days=1), SPRING)
    assert await conn.fetchval("SELECT count(*) FROM account_day_start") == 0


async def test_a_request_straddling_midnight_gathers_the_start_of_day_again_for_the_new_day(
    paper_broker: PaperBroker,
    paper_auth: dict[str, str],
    pg_pool: asyncpg.Pool,
    database_url: str,
    redis_url: str,
    redis_client: Any,
) -> None:
    """This host still says 23:59:59.999 when the database already says 00:00:00.000: the
    broker's start of the old day is never used for the new one."""
    settings = make_settings(paper_broker.url, database_url, redis_url)
    local = ny(SPRING - timedelta(days=1), 23, 59, 59, 999)
    database = ny(SPRING, 0, 0, 0, 0)
    async with pg_pool.acquire() as conn:
        await db.record_broker_start_of_day(conn, ACCOUNT, trading_day(local), Decimal(1))
    loaded: list[DayStart] = []

    async def decide(start: DayStart) -> db.DecisionInputs:
        loaded.append(start)
        async with pg_pool.acquire() as conn, conn.transaction():
            return await db.decision_inputs(
                conn,
                ACCOUNT,
                Decimal(100_000),
                hold=False,
                seen_order_ids=(),
                day=start.day,
                net_deposits=start.net_deposits,
                clock=database,
            )

    async with aiohttp.ClientSession() as session:
        source = DayStartSource(
            session, redis_client, pg_pool, settings, Metrics.create(), clock=lambda: local
        )
        inputs = await source.within_trading_day(ACCOUNT, paper_auth, decide)

    assert [start.day for start in loaded] == [SPRING - timedelta(days=1), SPRING]
    assert loaded[0].broker_nlv == Decimal(1)  # the old day's, gathered first...
    assert inputs.trading_day == SPRING  # ... never used: the new day's first sight is
    assert (inputs.start_of_day_nlv, inputs.start_of_day_source) == (
        Decimal(100_000),
        "first_sight",
    )
    asked = [r.raw_path for r in paper_broker.book.seen_requests() if "snapshot-date" in r.raw_path]
    assert [path.split("snapshot-date=")[1][:10] for path in asked] == [SPRING.isoformat()]
