"""Migration 0025 (account_day_start.source, net_deposits_at_start): from a database at the
previous version holding first sights; the table stays append-only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest

from gatekeeper.adapters.migrations import apply_migrations
from tests.fixtures.infra import migrations_before

VERSION = 25
DAY = date(2026, 3, 9)


@pytest.fixture
async def conn(empty_database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(empty_database_url)
    try:
        yield connection
    finally:
        await connection.close()


def previous_version(tmp_path: Path) -> Path:
    """The repository's migrations before 0025, unchanged (same names, same checksums)."""
    return migrations_before(tmp_path, VERSION)


async def test_existing_rows_are_first_sights_and_the_brokers_row_joins_them(
    conn: asyncpg.Connection, tmp_path: Path
) -> None:
    await apply_migrations(conn, previous_version(tmp_path))
    await conn.execute(
        "INSERT INTO account_day_start (account_id, trading_day, net_liquidating_value)"
        " VALUES ('5WT00001', $1, 94500)",
        DAY,
    )

    applied = await apply_migrations(conn)

    assert applied[0].version == VERSION
    row = await conn.fetchrow("SELECT * FROM account_day_start")
    assert row is not None
    assert (row["source"], row["net_deposits_at_start"]) == ("first_sight", Decimal(0))
    # The broker's row for the same day is added next to it; one row per source.
    await conn.execute(
        "INSERT INTO account_day_start (account_id, trading_day, net_liquidating_value, source)"
        " VALUES ('5WT00001', $1, 100000, 'broker_bod')",
        DAY,
    )
    with pytest.raises(asyncpg.UniqueViolationError):
        await conn.execute(
            "INSERT INTO account_day_start"
            " (account_id, trading_day, net_liquidating_value, source)"
            " VALUES ('5WT00001', $1, 1, 'broker_bod')",
            DAY,
        )
    # New rows must say where their figure comes from, and only these two sources exist.
    with pytest.raises(asyncpg.NotNullViolationError):
        await conn.execute(
            "INSERT INTO account_day_start (account_id, trading_day, net_liquidating_value)"
            " VALUES ('5WT00002', $1, 1)",
            DAY,
        )
    with pytest.raises(asyncpg.CheckViolationError, match="account_day_start_source_check"):
        await conn.execute(
            "INSERT INTO account_day_start"
            " (account_id, trading_day, net_liquidating_value, source)"
            " VALUES ('5WT00002', $1, 1, 'guess')",
            DAY,
        )
    # The broker's snapshot precedes the day's deposits: it contains none.
    with pytest.raises(asyncpg.CheckViolationError, match="broker_deposits_check"):
        await conn.execute(
            "INSERT INTO account_day_start"
            " (account_id, trading_day, net_liquidating_value, source, net_deposits_at_start)"
            " VALUES ('5WT00002', $1, 1, 'broker_bod', 10)",
            DAY,
        )
    for statement in (
        "UPDATE account_day_start SET net_liquidating_value = 1",
        "DELETE FROM account_day_start WHERE source = 'first_sight'",
    ):
        with pytest.raises(asyncpg.RestrictViolationError, match="append-only"):
            await conn.execute(statement)
