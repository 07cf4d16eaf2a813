"""The order path's locked read over the trading day (issue 12, item 1): its cost must not
grow with the day's decisions, the number of protected accounts or the history.

Run: .venv/bin/pytest tests/bench/test_bench_ledger.py -m bench -s -p no:randomly
     (GK_BENCH_HISTORY_ROWS=10000000 for the issue's 10 million rows; default 1,000,000)

On a fresh test database: 1,000 accounts with a protection each, three of which have 0, 1,000
and 5,000 allowed decisions today (each answered `accepted` with a broker order id the account
state then shows; measured in the same rounds, interleaved), then a generated history
(decisions and outcomes over the past year, audit-chain, ledger and retry-key triggers off
while it is generated: a private test database only; the day counters of the history are
then filled in one statement). Before and after the history it times, interleaved, in
rounds:

- ``read``: the locked read alone (decision_inputs_locked: lock, duplicate lookup, inputs;
  rolled back), given when the account state was fetched (1 s before), as the engine
  should pass it,
- ``no state age``: the same without it (every order answered in the last minute is looked
  up among the state's order ids),
- ``named``: the read of an order that carries the bot's own external-identifier, with the
  duplicate window on (60 s): the retry lookup by identifier and by fingerprint,
- ``decision``: a whole allowed decision's database work (the locked read, the decision row,
  commit, then its `accepted` outcome), growing the day by one each time,
- ``scan``: the read the order path made before sql/0030 (the day's decisions with their
  newest outcome), for comparison.

Prints p50 and p99 (ms) for each and the ratio of each p50 to the one at 0 decisions (before
the history).
"""

from __future__ import annotations

import os
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg
import pytest

from gatekeeper.adapters import decisions as db
from gatekeeper.core.tradingday import trading_day
from tests.integration.test_ledger import SCAN, decide, order

# stalls_event_loop: a benchmark on a shared machine; a slow callback is not what it measures
pytestmark = [pytest.mark.bench, pytest.mark.timeout(7200), pytest.mark.stalls_event_loop]

ACCOUNTS = 1_000
# three of the protected accounts, with 0, 1,000 and 5,000 allowed decisions today
LEVELS = {0: "5WB00001", 1_000: "5WB00002", 5_000: "5WB00003"}
HISTORY = int(os.environ.get("GK_BENCH_HISTORY_ROWS", "1000000"))
ROUNDS, CALLS = 5, 40


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(database_url)
    try:
        yield connection
    finally:
        await connection.close()


async def protect_accounts(conn: asyncpg.Connection) -> None:
    user = await conn.fetchval(
        "INSERT INTO users (email) VALUES ('bench@example.com') RETURNING id"
    )
    await conn.execute(
        "INSERT INTO portfolio_protections (user_id, account_id, max_daily_trades)"
        " SELECT $1, '5WB' || lpad(n::text, 5, '0'), 10000 FROM generate_series(1, $2) AS n",
        user,
        ACCOUNTS,
    )


async def decide_today(conn: asyncpg.Connection, account: str, count: int, seen: set[str]) -> None:
    """``count`` more allowed decisions of the account today, each accepted with a broker id
    (through the triggers, in one statement each)."""
    day = trading_day(await db.database_now(conn))
    first = len(seen)
    await conn.execute(
        """
        INSERT INTO risk_decisions (decision_id, account_id, route_kind, verdict, message,
            detail, trading_day, trade_count, reserved_orders, latency_ms)
        SELECT gen_random_uuid(), $1, 'place', 'allow', 'allowed',
               jsonb_build_object('n', n, 'external_identifiers',
                                  jsonb_build_array('gk-' || n), 'fingerprint', md5(n::text)),
               $2, 1, $3::jsonb, 1
        FROM generate_series($4::int, $5::int) AS n
        """,
        account,
        day,
        '[{"order-type": "Market", "legs": []}]',
        first + 1,
        first + count,
    )
    await conn.execute(
        """
        INSERT INTO order_outcomes (decision_id, account_id, outcome, http_status,
                                    broker_order_id)
        SELECT decision_id, account_id, 'accepted', 201, account_id || '-' || (detail ->> 'n')
        FROM risk_decisions d
        WHERE account_id = $1 AND trading_day = $2
          AND NOT EXISTS (SELECT 1 FROM order_outcomes o WHERE o.decision_id = d.decision_id)
        ORDER BY id
        """,
        account,
        day,
    )
    seen.update(f"{account}-{n}" for n in range(first + 1, first + count + 1))


async def generate_history(conn: asyncpg.Connection, rows: int) -> float:
    """``rows`` decisions over the past year for every account (60 % allowed and accepted),
    then the day counters of that history. Returns the seconds it took."""
    started = time.perf_counter()
    triggers = [
        ("risk_decisions", "risk_decisions_audit_chain"),
        ("risk_decisions", "risk_decisions_order_ledger"),
        ("order_outcomes", "order_outcomes_audit_chain"),
        ("order_outcomes", "order_outcomes_order_ledger"),
        ("risk_decisions", "risk_decisions_submission_keys"),
    ]
    for table, trigger in triggers:
        await conn.execute(f"ALTER TABLE {table} DISABLE TRIGGER {trigger}")
    try:
        await conn.execute(
            """
            INSERT INTO risk_decisions (decision_id, account_id, route_kind, verdict, message,
                detail, trading_day, trade_count, reserved_orders, latency_ms, decided_at,
                chain_seq, chain_prev, chain_hash)
            SELECT gen_random_uuid(), '5WB' || lpad((n % $2 + 1)::text, 5, '0'), 'place',
                   CASE WHEN n % 5 < 3 THEN 'allow' ELSE 'reject' END, 'm',
                   jsonb_build_object('n', n), at::date,
                   CASE WHEN n % 5 < 3 THEN 1 ELSE 0 END,
                   CASE WHEN n % 5 < 3 THEN '[{"order-type": "Market", "legs": []}]'
                        ELSE '[]' END::jsonb,
                   1, at, n, '\\x00'::bytea, '\\x00'::bytea
            FROM (SELECT n, now() - interval '1 day' - (n % 365) * interval '1 day' AS at
                  FROM generate_series(1, $1) AS n) AS g
            """,
            rows,
            ACCOUNTS,
        )
        # planned on the grown table: a hash anti-join, not a lookup per decision
        await conn.execute("ANALYZE risk_decisions, order_outcomes")
        await conn.execute(
            """
            INSERT INTO order_outcomes (decision_id, account_id, outcome, http_status,
                broker_order_id, recorded_at, chain_seq, chain_prev, chain_hash)
            SELECT decision_id, account_id, 'accepted', 201, 'H' || id, decided_at, id,
                   '\\x00'::bytea, '\\x00'::bytea
            FROM risk_decisions d WHERE verdict = 'allow' AND trade_count > 0
              AND trading_day < (now() AT TIME ZONE 'America/New_York')::date
              -- the levels' own decisions, answered already, are of yesterday once New York's
              -- midnight passed during the run
              AND NOT EXISTS (SELECT 1 FROM order_outcomes o WHERE o.decision_id = d.decision_id)
            """
        )
        await conn.execute(
            """
            INSERT INTO account_day_trades (account_id, trading_day, trades)
            SELECT account_id, trading_day, sum(trade_count) FROM risk_decisions
            WHERE verdict = 'allow' AND trade_count > 0
              AND trading_day < (now() AT TIME ZONE 'America/New_York')::date
            GROUP BY 1, 2
            ON CONFLICT (account_id, trading_day) DO UPDATE SET trades = excluded.trades
            """
        )
    finally:
        for table, trigger in triggers:
            await conn.execute(f"ALTER TABLE {table} ENABLE TRIGGER {trigger}")
    await conn.execute("VACUUM ANALYZE")
    return time.perf_counter() - started


# The account state a decision uses is fresh (state_ttl_seconds is 2 s by default).
STATE_AGE = timedelta(seconds=1)


def state_fetched_at() -> datetime:
    return datetime.now(UTC) - STATE_AGE


async def locked_read(
    conn: asyncpg.Connection,
    account: str,
    seen: set[str],
    with_state_time: bool = True,
    identified: bool = False,
) -> db.DecisionInputs:
    """The locked read (rolled back); ``identified``: as for a bot that names its orders
    (external-identifier) with the duplicate window on: a retry is looked for by both."""
    tx = conn.transaction()
    await tx.start()
    try:
        read = await db.decision_inputs_locked(
            conn,
            account,
            Decimal(100_000),
            seen_order_ids=seen,
            state_fetched_at=state_fetched_at() if with_state_time else None,
            client_identifiers=(f"bot-{uuid.uuid4()}",) if identified else (),
            fingerprint=uuid.uuid4().hex if identified else "",
            duplicate_window_seconds=60.0 if identified else 0.0,
        )
    finally:
        await tx.rollback()
    assert read.inputs is not None
    return read.inputs


async def whole_decision(conn: asyncpg.Connection, account: str, seen: set[str]) -> None:
    async with conn.transaction():
        read = await db.decision_inputs_locked(
            conn,
            account,
            Decimal(100_000),
            seen_order_ids=seen,
            state_fetched_at=state_fetched_at(),
        )
        assert read.inputs is not None
        decision_id = await decide(conn, account, read.inputs.trading_day, orders=[order("X")])
    broker_id = f"W{uuid.uuid4().hex[:12]}"
    await db.insert_outcome(
        conn, decision_id, account, "accepted", http_status=201, broker_order_id=broker_id
    )
    seen.add(broker_id)


async def old_scan(conn: asyncpg.Connection, account: str) -> None:
    day = trading_day(await db.database_now(conn))
    await conn.fetch(SCAN, account, day)


Figures = dict[str, tuple[float, float]]


async def measure(conn: asyncpg.Connection, seen: dict[str, set[str]]) -> dict[int, Figures]:
    """p50 and p99 (ms) of each operation on each account, interleaved in rounds."""
    # the decision first: it commits what its read settles (the reads alone roll back)
    operations: dict[str, Callable[[str], Awaitable[object]]] = {
        "decision": lambda account: whole_decision(conn, account, seen[account]),
        "read": lambda account: locked_read(conn, account, seen[account]),
        "no_age": lambda account: locked_read(conn, account, seen[account], False),
        "ids": lambda account: locked_read(conn, account, seen[account], identified=True),
        "scan": lambda account: old_scan(conn, account),
    }
    samples: dict[tuple[int, str], list[float]] = {
        (level, name): [] for level in LEVELS for name in operations
    }
    for account in LEVELS.values():
        for operation in operations.values():
            await operation(account)  # warm up (plans, caches)
    for _ in range(ROUNDS):
        for level, account in LEVELS.items():
            for name, operation in operations.items():
                for _ in range(CALLS):
                    started = time.perf_counter()
                    await operation(account)
                    samples[level, name].append((time.perf_counter() - started) * 1000)
    return {
        level: {
            name: (
                statistics.median(samples[level, name]),
                statistics.quantiles(samples[level, name], n=100)[98],
            )
            for name in operations
        }
        for level in LEVELS
    }


async def test_the_locked_read_is_flat_over_the_day_the_accounts_and_the_history(
    conn: asyncpg.Connection,
) -> None:
    await protect_accounts(conn)
    seen: dict[str, set[str]] = {account: set() for account in LEVELS.values()}
    for level, account in LEVELS.items():
        await decide_today(conn, account, level, seen[account])
    # what autovacuum does over a day (sql/0030 sets it to run after every thousand dead rows
    # of the ledger): the day above was written in one burst, not over hours
    await conn.execute("VACUUM ANALYZE orders_in_flight, account_day_trades")
    await conn.execute("ANALYZE")
    results = {"": await measure(conn, seen)}
    seconds = await generate_history(conn, HISTORY)
    # a year of history grows over a year, autovacuum keeping up: not vacuumed and analyzed
    # while measured (as it would be right after a bulk insert)
    await conn.execute("VACUUM ANALYZE risk_decisions, order_outcomes, account_day_trades")
    results[f" + {HISTORY:,} rows of history"] = await measure(conn, seen)

    for level, account in LEVELS.items():
        read = await locked_read(conn, account, seen[account])
        assert read.reservations.in_flight == []  # every order shown by the state
        assert read.reservations.trades_today >= level
    base = results[""][0]
    print(f"\n{ACCOUNTS:,} protected accounts; history generated in {seconds:.0f} s")
    print(
        f"{'decisions today (ms)':>40} {'read p50/p99':>14} {'no state time p50':>18}"
        f" {'named p50':>10} {'decision p50/p99':>17} {'old scan p50':>13}"
    )
    for suffix, by_level in results.items():
        for level, figures in by_level.items():
            print(
                f"{f'{level:,}{suffix}':>40} {figures['read'][0]:6.2f}/{figures['read'][1]:<7.2f}"
                f" {figures['no_age'][0]:18.2f} {figures['ids'][0]:10.2f}"
                f" {figures['decision'][0]:8.2f}/{figures['decision'][1]:<8.2f}"
                f" {figures['scan'][0]:12.2f}   read x{figures['read'][0] / base['read'][0]:.2f},"
                f" named x{figures['ids'][0] / base['ids'][0]:.2f},"
                f" decision x{figures['decision'][0] / base['decision'][0]:.2f}"
            )
