"""``gatekeeper decisions``, ``protections list`` and ``migrate --status``, run as the real
command against the test's database."""

from __future__ import annotations

import json

import asyncpg

from gatekeeper.adapters import protections as store
from gatekeeper.adapters import users
from gatekeeper.adapters.migrations import discover
from gatekeeper.adapters.protection_stops import trigger_emergency_stop
from tests.fixtures.admin import run_cli
from tests.fixtures.decision_rows import record


async def test_decisions_lists_todays_newest_first_as_a_table(
    database_url: str, pg_pool: asyncpg.Pool
) -> None:
    async with pg_pool.acquire() as conn:
        allowed = await record(conn)
        rejected = await record(conn, verdict="reject", codes=("max_single_trade",))
        await record(conn, "5WT00002")

    table = await run_cli(database_url, "decisions", "5WT00001")

    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.strip().splitlines()
    assert header.split()[:4] == ["time", "(New", "York)", "verdict"]
    assert [row.split()[-1] for row in rows] == [str(rejected), str(allowed)]
    assert "reject" in rows[0]
    assert "max_single_trade" in rows[0]
    assert "Buy to Open 1 AAPL @ 150.00 Debit (Limit, Day)" in rows[1]
    assert "pending" in rows[1]


async def test_decisions_filters_and_json(database_url: str, pg_pool: asyncpg.Pool) -> None:
    async with pg_pool.acquire() as conn:
        await record(conn)
        rejected = await record(conn, verdict="reject", codes=("cash_reserve",))

    by_verdict = await run_cli(
        database_url, "decisions", "5WT00001", "--verdict", "reject", "--json"
    )
    by_code = await run_cli(
        database_url, "decisions", "5WT00001", "--code", "cash_reserve", "--json"
    )
    later = await run_cli(database_url, "decisions", "5WT00001", "--since", "2999-01-01")

    assert [d["decision_id"] for d in json.loads(by_verdict.stdout)] == [str(rejected)]
    assert [d["decision_id"] for d in json.loads(by_code.stdout)] == [str(rejected)]
    [item] = json.loads(by_code.stdout)
    assert item["codes"] == ["cash_reserve"]
    assert item["summary"]["legs"][0]["symbol"] == "AAPL"
    assert later.returncode == 0
    assert later.stdout.startswith("no decisions for 5WT00001 since 2999-01-01T00:00:00-05:00")


async def test_decisions_refuses_a_since_it_cannot_read_in_one_line(database_url: str) -> None:
    result = await run_cli(database_url, "decisions", "5WT00001", "--since", "last week")

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: --since 'last week': use today, a date (YYYY-MM-DD), a duration (15m, 2h, 7d)"
        " or an ISO 8601 time with its offset (2026-12-04T14:30:00Z)"
    ]


async def test_protections_list_shows_every_protection_one_line_each(
    database_url: str, pg_pool: asyncpg.Pool
) -> None:
    empty = await run_cli(database_url, "protections", "list")
    async with pg_pool.acquire() as conn:
        owner = await users.create_user(conn, "owner@example.com")
        actor = store.Actor("test", "cli")
        await store.create_protection(conn, owner.id, "5WT00001", {}, actor)
        second = await store.create_protection(conn, owner.id, "5WT00002", {}, actor)
        await trigger_emergency_stop(
            conn, second.id, None, reason="test", triggered_by="test", mode=None, actor=actor
        )

    listed = await run_cli(database_url, "protections", "list")
    one = await run_cli(database_url, "protections", "list", "--account", "5WT00001")

    assert (empty.returncode, empty.stdout.strip()) == (0, "no protections")
    assert listed.returncode == 0, listed.stderr
    header, first, stopped = listed.stdout.strip().splitlines()
    assert header.split()[:3] == ["id", "account", "owner"]
    assert first.split()[1:4] == ["5WT00001", "owner@example.com", "25.00%"]
    assert first.split()[-1] == "-"
    assert "STOPPED (halt)" in stopped
    assert len(one.stdout.strip().splitlines()) == 2


async def test_migrate_status_lists_applied_and_pending(
    database_url: str, empty_database_url: str
) -> None:
    current = await run_cli(database_url, "migrate", "--status")
    empty = await run_cli(empty_database_url, "migrate", "--status")
    files = discover()

    assert current.returncode == 0, current.stderr
    lines = current.stdout.strip().splitlines()
    assert [line.split()[:2] for line in lines[:-1]] == [
        ["applied", f"{m.version:04d}"] for m in files
    ]
    assert lines[-1] == f"up to date: {len(files)} migration(s) applied"
    assert empty.returncode == 1
    assert [line.split()[0] for line in empty.stdout.strip().splitlines()[:-1]] == (
        ["pending"] * len(files)
    )
    assert empty.stdout.strip().endswith(f"{len(files)} pending: run `gatekeeper migrate`")
