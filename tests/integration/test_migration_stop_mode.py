"""Migration 0023 (emergency_stop_mode optional, emergency_stop_active_mode): from an empty
database, and from a database at the previous version holding protections and stops."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from gatekeeper.adapters.migrations import apply_migrations
from tests.fixtures.infra import migrations_before

VERSION = 23
STOPPED = "now(), 'ops', 'drill'"


@pytest.fixture
async def conn(empty_database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(empty_database_url)
    try:
        yield connection
    finally:
        await connection.close()


def previous_version(tmp_path: Path) -> Path:
    """The repository's migrations before 0023, unchanged (same names, same checksums)."""
    return migrations_before(tmp_path, VERSION)


async def column(conn: asyncpg.Connection, name: str) -> asyncpg.Record:
    row = await conn.fetchrow(
        "SELECT is_nullable, column_default FROM information_schema.columns"
        " WHERE table_name = 'portfolio_protections' AND column_name = $1",
        name,
    )
    assert row is not None, name
    return row


async def add(conn: asyncpg.Connection, user_id: int, account: str, extra: str = "") -> int:
    columns, values = ("", "") if not extra else extra.split("|")
    protection_id: int = await conn.fetchval(
        f"INSERT INTO portfolio_protections (user_id, account_id{columns})"  # noqa: S608
        f" VALUES ($1, $2{values}) RETURNING id",
        user_id,
        account,
    )
    return protection_id


async def test_from_an_empty_database(conn: asyncpg.Connection) -> None:
    applied = await apply_migrations(conn)

    assert VERSION in [m.version for m in applied]
    mode = await column(conn, "emergency_stop_mode")
    assert (mode["is_nullable"], mode["column_default"]) == ("YES", None)
    active = await column(conn, "emergency_stop_active_mode")
    assert (active["is_nullable"], active["column_default"]) == ("YES", None)
    user_id = await conn.fetchval("INSERT INTO users (email) VALUES ('a@b.c') RETURNING id")
    protection_id = await add(conn, user_id, "A1")
    row = await conn.fetchrow(
        "SELECT emergency_stop_mode, emergency_stop_active_mode FROM portfolio_protections"
        " WHERE id = $1",
        protection_id,
    )
    assert row is not None
    assert tuple(row) == (None, None)  # not set explicitly, no stop


async def test_from_the_previous_version_keeps_every_explicit_mode(
    conn: asyncpg.Connection, tmp_path: Path
) -> None:
    await apply_migrations(conn, previous_version(tmp_path))
    user_id = await conn.fetchval("INSERT INTO users (email) VALUES ('a@b.c') RETURNING id")
    stop_columns = (
        ", emergency_stop_triggered_at, emergency_stop_triggered_by, emergency_stop_reason"
    )
    ids = {
        "default": await add(conn, user_id, "A1"),
        "reduce_only": await add(conn, user_id, "A2", ", emergency_stop_mode|, 'reduce_only'"),
        "halt_stopped": await add(conn, user_id, "A3", f"{stop_columns}|, {STOPPED}"),
        "reduce_only_stopped": await add(
            conn, user_id, "A4", f"{stop_columns}, emergency_stop_mode|, {STOPPED}, 'reduce_only'"
        ),
    }

    applied = await apply_migrations(conn)

    assert [m.version for m in applied][:1] == [VERSION]
    rows = {
        row["id"]: (row["emergency_stop_mode"], row["emergency_stop_active_mode"])
        for row in await conn.fetch(
            "SELECT id, emergency_stop_mode, emergency_stop_active_mode FROM portfolio_protections"
        )
    }
    # 'halt' filled by the old default cannot be told from a choice: it stays halt.
    assert rows[ids["default"]] == ("halt", None)
    assert rows[ids["reduce_only"]] == ("reduce_only", None)
    # A stop active during the upgrade keeps the mode it had.
    assert rows[ids["halt_stopped"]] == ("halt", "halt")
    assert rows[ids["reduce_only_stopped"]] == ("reduce_only", "reduce_only")


@pytest.mark.parametrize(
    ("assignment", "constraint"),
    [
        ("emergency_stop_mode = 'stop'", "emergency_stop_mode_check"),
        ("emergency_stop_active_mode = 'halt'", "emergency_stop_active_mode_state_check"),
        (
            "emergency_stop_triggered_at = now(), emergency_stop_triggered_by = 'x',"
            " emergency_stop_reason = 'y'",
            "emergency_stop_active_mode_state_check",
        ),
        (
            "emergency_stop_triggered_at = now(), emergency_stop_triggered_by = 'x',"
            " emergency_stop_reason = 'y', emergency_stop_active_mode = 'stop'",
            "emergency_stop_active_mode_check",
        ),
    ],
)
async def test_the_database_refuses_inconsistent_stop_modes(
    conn: asyncpg.Connection, assignment: str, constraint: str
) -> None:
    await apply_migrations(conn)
    user_id = await conn.fetchval("INSERT INTO users (email) VALUES ('a@b.c') RETURNING id")
    protection_id = await add(conn, user_id, "A1")

    with pytest.raises(asyncpg.CheckViolationError) as caught:
        await conn.execute(
            f"UPDATE portfolio_protections SET {assignment} WHERE id = $1",  # noqa: S608
            protection_id,
        )

    assert caught.value.constraint_name == constraint
