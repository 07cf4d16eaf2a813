"""The tamper-evident audit trail (issue 11, item 5): decisions, outcomes, protection changes
and emergency events hash-chained per account (sql/0028), through the order path, the
protections and the stops, under concurrency, and after a superuser tampered with them."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from gatekeeper.adapters import audit_chain, stops
from gatekeeper.adapters import protections as store
from gatekeeper.adapters.migrations import apply_migrations
from gatekeeper.adapters.protection_stops import trigger_emergency_stop
from gatekeeper.settings import RiskSettings
from tests.fixtures.alerts import settled
from tests.fixtures.audit import ACCOUNT, decide, problems, record_outcome
from tests.fixtures.infra import migrations_before
from tests.fixtures.orders import ACTOR, Bot, order, protect


def positions(rows: list[audit_chain.ChainRow]) -> list[int]:
    return [row.seq for row in rows]


async def test_python_recomputes_what_the_database_hashed(pg_pool: asyncpg.Pool) -> None:
    async with pg_pool.acquire() as conn:
        first = await decide(conn)
        await record_outcome(conn, first)
        await decide(conn, locked=False)
        await conn.execute(
            "INSERT INTO order_outcomes (decision_id, account_id, outcome) VALUES ($1, $2,"
            " 'unknown')",
            await decide(conn),
            ACCOUNT,
        )
        chains = await audit_chain.chains(conn)

    rows = chains[ACCOUNT]
    assert positions(rows) == [1, 2, 3, 4, 5]
    assert [r.table for r in rows] == ["risk_decisions", "order_outcomes", "risk_decisions",
                                       "risk_decisions", "order_outcomes"]  # fmt: skip
    assert rows[0].prev == audit_chain.GENESIS
    assert all(r.computed == r.stored for r in rows)
    assert all(b.prev == a.stored for a, b in itertools.pairwise(rows))


async def test_order_path_decisions_and_outcomes_are_chained(
    bot: Bot, pg_pool: asyncpg.Pool, database_url: str
) -> None:
    from tests.fixtures.admin import run_cli

    await protect(pg_pool, bot.account, max_single_trade_percentage=5)
    assert (await bot.place(order("AAPL", 1, "150.00"))).status == 201
    assert (await bot.place(order("AAPL", 1000, "150.00"))).status == 422
    assert (await bot.place(order("AAPL", 1, "150.00"), dry_run=True)).status == 201
    # The dry-run's outcome row is written after its answer was relayed.
    await settled(pg_pool, "SELECT count(*) FROM order_outcomes", 2)  # this test's database

    async with pg_pool.acquire() as conn:
        rows = (await audit_chain.chains(conn))[bot.account]
        assert await problems(conn) == []
    # created; allowed and its outcome; rejected; the dry-run and what the broker answered
    assert [r.table for r in rows] == [
        "protection_changes", "risk_decisions", "order_outcomes",
        "risk_decisions", "risk_decisions", "order_outcomes",
    ]  # fmt: skip
    assert positions(rows) == [1, 2, 3, 4, 5, 6]
    result = await run_cli(database_url, "audit", "verify", "--account", bot.account)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "audit verify: OK: 1 account(s), 6 row(s)" in result.stdout


async def test_protection_changes_and_stops_are_chained(pg_pool: asyncpg.Pool) -> None:
    protection = await protect(pg_pool, ACCOUNT)
    async with pg_pool.acquire() as conn:
        await store.update_protection(conn, protection.id, None, {"max_daily_trades": 7}, ACTOR)
        await stops.stop_account(
            conn, ACCOUNT, reason="test", triggered_by="ops", mode="halt", actor=ACTOR,
            may_loosen=True, risk=RiskSettings(), default_stop_mode=None,
        )  # fmt: skip
        await stops.clear_account(conn, ACCOUNT, cleared_by="ops", actor=ACTOR)
        await stops.stop_account(
            conn, "5WT00002", reason="unprotected", triggered_by="ops", mode=None,
            actor=ACTOR, may_loosen=True, risk=RiskSettings(), default_stop_mode=None,
        )  # fmt: skip
        chains = await audit_chain.chains(conn)
        assert await problems(conn) == []

    assert [(r.table, r.seq) for r in chains[ACCOUNT]] == [
        ("protection_changes", 1),  # created
        ("protection_changes", 2),  # updated
        ("protection_changes", 3),
        ("emergency_events", 4),  # triggered
        ("protection_changes", 5),
        ("emergency_events", 6),  # cleared
    ]
    # the system protection made for the stop, and the stop: a chain of its own
    assert [r.table for r in chains["5WT00002"]] == [
        "protection_changes", "protection_changes", "emergency_events"
    ]  # fmt: skip


async def test_concurrent_writers_on_two_pools_never_fork_the_chain(database_url: str) -> None:
    protection_id: int
    pools = [await asyncpg.create_pool(database_url, min_size=4, max_size=8) for _ in range(2)]
    try:
        protection_id = (await protect(pools[0], ACCOUNT)).id

        async def decision(pool: asyncpg.Pool, n: int) -> None:
            async with pool.acquire() as conn:
                decision_id = await decide(conn, locked=n % 3 != 0)  # gate failures: no lock
                await record_outcome(conn, decision_id)

        async def change(pool: asyncpg.Pool, n: int) -> None:
            async with pool.acquire() as conn:
                await store.update_protection(
                    conn, protection_id, None, {"max_daily_trades": n}, ACTOR
                )

        async def stop(pool: asyncpg.Pool) -> None:
            async with pool.acquire() as conn:
                await trigger_emergency_stop(
                    conn, protection_id, None, reason="r", triggered_by="t", mode="halt",
                    actor=ACTOR, may_loosen=True,
                )  # fmt: skip

        work = [decision(pools[n % 2], n) for n in range(60)]
        work += [change(pools[n % 2], n + 1) for n in range(20)]
        work += [stop(pools[n % 2]) for n in range(4)]  # one of them stops
        await asyncio.gather(*work)

        async with pools[0].acquire() as conn:
            rows = (await audit_chain.chains(conn))[ACCOUNT]
            assert await problems(conn) == []
    finally:
        for pool in pools:
            await pool.close()
    # created + 60 decisions + 60 outcomes + 20 updates + the stop's change and event
    assert positions(rows) == list(range(1, 1 + 1 + 120 + 20 + 2))
    assert len({r.prev for r in rows}) == len(rows)  # no two rows share a predecessor


async def test_the_service_role_appends_but_cannot_move_a_head(pg_pool: asyncpg.Pool) -> None:
    async with pg_pool.acquire() as conn:
        await decide(conn)
        async with conn.transaction():
            await conn.execute("SET LOCAL ROLE gatekeeper_app")
            await decide(conn)
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                async with conn.transaction():  # a savepoint: the outer one survives
                    await conn.execute("UPDATE audit_chain_heads SET chain_seq = 1")
        assert await problems(conn) == []
        assert await conn.fetchval("SELECT chain_seq FROM audit_chain_heads") == 2


# -- rows written before the migration --------------------------------------------------------


async def test_rows_from_before_the_migration_start_the_chain(
    empty_conn: asyncpg.Connection, tmp_path: Path
) -> None:
    await apply_migrations(empty_conn, migrations_before(tmp_path, 28))
    user_id = await empty_conn.fetchval("INSERT INTO users (email) VALUES ('o@x') RETURNING id")
    pid = await empty_conn.fetchval(
        "INSERT INTO portfolio_protections (user_id, account_id) VALUES ($1, $2) RETURNING id",
        user_id,
        ACCOUNT,
    )
    legacy: list[tuple[str, datetime]] = [
        ("risk_decisions", datetime(2026, 3, 9, 10, 0, 1, tzinfo=UTC)),
        ("protection_changes", datetime(2026, 3, 9, 10, 0, 0, tzinfo=UTC)),
        ("emergency_events", datetime(2026, 3, 9, 10, 0, 2, tzinfo=UTC)),
    ]
    for table, at in legacy:
        if table == "risk_decisions":
            await empty_conn.execute(
                "INSERT INTO risk_decisions (decision_id, account_id, route_kind, verdict,"
                " message, detail, trading_day, latency_ms, decided_at) VALUES"
                " (gen_random_uuid(), $1, 'place', 'allow', 'm', '{\"x\": 1.10}', '2026-03-09',"
                " 1.5, $2::timestamptz)",
                ACCOUNT,
                at,
            )
        elif table == "protection_changes":
            await empty_conn.execute(
                "INSERT INTO protection_changes (protection_id, account_id, action, changed_by,"
                " via, new_values, changed_at) VALUES ($1, $2, 'created', 'o', 'cli', '{}',"
                " $3::timestamptz)",
                pid,
                ACCOUNT,
                at,
            )
        else:
            await empty_conn.execute(
                "INSERT INTO emergency_events (protection_id, account_id, event, actor, via,"
                " occurred_at) VALUES ($1, $2, 'triggered', 'o', 'cli', $3::timestamptz)",
                pid,
                ACCOUNT,
                at,
            )

    applied = await apply_migrations(empty_conn)
    await decide(empty_conn)  # a new row continues the chain

    assert applied[0].version == 28
    rows = (await audit_chain.chains(empty_conn))[ACCOUNT]
    assert [(r.table, r.seq) for r in rows] == [
        ("protection_changes", 1),
        ("risk_decisions", 2),
        ("emergency_events", 3),
        ("risk_decisions", 4),
    ]
    assert await problems(empty_conn) == []
    # still append-only
    with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
        await empty_conn.execute("UPDATE risk_decisions SET message = 'x'")
