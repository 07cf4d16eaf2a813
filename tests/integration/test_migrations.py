"""The migration runner against a real, empty database, with small SQL files of the test's own."""

from __future__ import annotations

import asyncio
import hashlib
import re
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from gatekeeper.adapters import migrations
from gatekeeper.adapters.migrations import (
    DEFAULT_SQL_DIR,
    AppliedMigration,
    Migration,
    MigrationError,
    apply_migrations,
    discover,
    is_current,
    migration_status,
    pending_migrations,
)

FIRST = "CREATE TABLE first (id int PRIMARY KEY);"
SECOND = "CREATE TABLE second (id int PRIMARY KEY); INSERT INTO second VALUES (1), (2);"
THIRD = "ALTER TABLE first ADD COLUMN note text;"
ROOT = Path(__file__).resolve().parents[2]


def write(sql_dir: Path, file_name: str, sql: str) -> Path:
    path = sql_dir / file_name
    path.write_text(sql, encoding="utf-8")
    return path


@pytest.fixture
def sql_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "sql"
    directory.mkdir()
    write(directory, "0001_first.sql", FIRST)
    write(directory, "0002_second.sql", SECOND)
    return directory


@pytest.fixture
async def conn(empty_database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(empty_database_url)
    try:
        yield connection
    finally:
        await connection.close()


async def tables(conn: asyncpg.Connection) -> set[str]:
    rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return {row["tablename"] for row in rows}


async def recorded(conn: asyncpg.Connection) -> list[int]:
    return [row["version"] for row in await conn.fetch("SELECT version FROM schema_migrations")]


# -- discovery ---------------------------------------------------------------------------------


def test_discover_orders_by_number_and_ignores_other_files(tmp_path: Path) -> None:
    write(tmp_path, "0010_ten.sql", "SELECT 1;")
    write(tmp_path, "0002_two.sql", "SELECT 2;")
    write(tmp_path, "9_nine.sql", "SELECT 9;")
    write(tmp_path, "README.md", "not a migration")

    migrations = discover(tmp_path)

    assert [(m.version, m.name) for m in migrations] == [(2, "two"), (9, "nine"), (10, "ten")]
    assert migrations[0].checksum == hashlib.sha256(b"SELECT 2;").hexdigest()
    assert migrations[0].label == "0002 two"


@pytest.mark.parametrize("file_name", ["first.sql", "0001-first.sql", "0001_.sql", "0_zero.sql"])
def test_discover_refuses_misnamed_sql_files(tmp_path: Path, file_name: str) -> None:
    write(tmp_path, file_name, "SELECT 1;")

    with pytest.raises(MigrationError, match=re.escape(file_name)):
        discover(tmp_path)


def test_discover_refuses_duplicate_versions(tmp_path: Path) -> None:
    write(tmp_path, "0001_a.sql", "SELECT 1;")
    write(tmp_path, "01_b.sql", "SELECT 1;")

    with pytest.raises(MigrationError, match="same version"):
        discover(tmp_path)


def test_discover_refuses_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(MigrationError, match="not found"):
        discover(tmp_path / "nope")


def test_default_sql_dir_is_the_repository_sql_dir() -> None:
    repository = Path(__file__).resolve().parents[2]
    assert repository / "sql" == DEFAULT_SQL_DIR


def test_an_install_that_is_not_a_clone_reads_the_migrations_its_wheel_installed(
    tmp_path: Path,
) -> None:
    """``pip install .`` (the compiled core) puts the package in site-packages, with no
    ``sql/`` beside it: the migrations are where pyproject.toml's data-files put them."""
    prefix = tmp_path / "venv"
    module = prefix / "lib" / "python3.11" / "site-packages" / "gatekeeper" / "adapters" / "m.py"
    module.parent.mkdir(parents=True)
    module.touch()
    assert migrations.sql_dir(module, prefix) == prefix / "share" / "gatekeeper" / "sql"
    data_files = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "data-files"
    ]
    assert data_files == {str(migrations.INSTALLED_SQL_DIR): ["sql/*.sql"]}
    # an installed copy with nothing in it is refused, not taken for an empty schema
    with pytest.raises(MigrationError, match="not found"):
        discover(migrations.sql_dir(module, prefix))


def test_a_clone_reads_its_own_sql_dir_whatever_the_prefix(tmp_path: Path) -> None:
    module = tmp_path / "clone" / "gatekeeper" / "adapters" / "m.py"
    module.parent.mkdir(parents=True)
    module.touch()
    (tmp_path / "clone" / "sql").mkdir()
    assert migrations.sql_dir(module, tmp_path / "venv") == tmp_path / "clone" / "sql"


# -- applying ----------------------------------------------------------------------------------


async def test_builds_from_an_empty_database(conn: asyncpg.Connection, sql_dir: Path) -> None:
    applied = await apply_migrations(conn, sql_dir)

    assert [(m.version, m.name) for m in applied] == [(1, "first"), (2, "second")]
    assert all(isinstance(m, AppliedMigration) and m.seconds > 0 for m in applied)
    assert await tables(conn) == {"first", "second", "schema_migrations"}
    rows = await conn.fetch("SELECT * FROM schema_migrations ORDER BY version")
    assert [(r["version"], r["name"], r["checksum"]) for r in rows] == [
        (1, "first", hashlib.sha256(FIRST.encode()).hexdigest()),
        (2, "second", hashlib.sha256(SECOND.encode()).hexdigest()),
    ]
    assert all(r["applied_at"] is not None and r["applied_at"].tzinfo for r in rows)


async def test_empty_directory_applies_nothing(conn: asyncpg.Connection, tmp_path: Path) -> None:
    assert await apply_migrations(conn, tmp_path) == []
    assert await tables(conn) == {"schema_migrations"}


async def test_rerun_applies_nothing(conn: asyncpg.Connection, sql_dir: Path) -> None:
    await apply_migrations(conn, sql_dir)

    assert await apply_migrations(conn, sql_dir) == []
    assert await conn.fetchval("SELECT count(*) FROM second") == 2


async def test_new_files_are_applied_on_the_next_run(
    conn: asyncpg.Connection, sql_dir: Path
) -> None:
    await apply_migrations(conn, sql_dir)
    write(sql_dir, "0003_third.sql", THIRD)

    applied = await apply_migrations(conn, sql_dir)

    assert [m.version for m in applied] == [3]
    assert await recorded(conn) == [1, 2, 3]


async def test_progress_callbacks_bracket_each_migration(
    conn: asyncpg.Connection, sql_dir: Path
) -> None:
    events: list[str] = []

    def migrating(migration: Migration) -> None:
        events.append(f"migrating {migration.label}")

    def migrated(migration: AppliedMigration) -> None:
        events.append(f"migrated {migration.label} {migration.seconds > 0}")

    await apply_migrations(conn, sql_dir, on_migrating=migrating, on_migrated=migrated)

    assert events == [
        "migrating 0001 first",
        "migrated 0001 first True",
        "migrating 0002 second",
        "migrated 0002 second True",
    ]


async def test_an_edited_applied_file_is_refused_and_nothing_applied(
    conn: asyncpg.Connection, sql_dir: Path
) -> None:
    await apply_migrations(conn, sql_dir)
    write(sql_dir, "0001_first.sql", FIRST + "\n-- an innocent-looking edit\n")
    write(sql_dir, "0003_third.sql", THIRD)

    with pytest.raises(MigrationError, match=r"0001_first\.sql was changed") as raised:
        await apply_migrations(conn, sql_dir)

    assert raised.value.details["changed"] == ["0001_first.sql"]
    assert await recorded(conn) == [1, 2]
    columns = await conn.fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'first'"
    )
    assert [c["column_name"] for c in columns] == ["id"]


async def test_an_applied_file_that_is_missing_is_refused(
    conn: asyncpg.Connection, sql_dir: Path
) -> None:
    await apply_migrations(conn, sql_dir)
    (sql_dir / "0002_second.sql").unlink()
    write(sql_dir, "0003_third.sql", THIRD)

    with pytest.raises(MigrationError, match="version 2 is applied but its file is missing"):
        await apply_migrations(conn, sql_dir)

    assert await recorded(conn) == [1, 2]


async def test_a_file_older_than_the_latest_applied_is_refused(
    conn: asyncpg.Connection, sql_dir: Path
) -> None:
    (sql_dir / "0002_second.sql").rename(sql_dir / "0005_second.sql")
    await apply_migrations(conn, sql_dir)
    write(sql_dir, "0003_third.sql", THIRD)

    with pytest.raises(MigrationError, match=r"0003_third\.sql is older than"):
        await apply_migrations(conn, sql_dir)

    assert await recorded(conn) == [1, 5]


async def test_a_failing_migration_is_rolled_back_and_earlier_ones_stay(
    conn: asyncpg.Connection, sql_dir: Path
) -> None:
    write(sql_dir, "0002_second.sql", "CREATE TABLE half_done (id int); SELECT 1 / 0;")
    write(sql_dir, "0003_third.sql", THIRD)

    with pytest.raises(MigrationError, match=r"0002_second\.sql failed .*division by zero"):
        await apply_migrations(conn, sql_dir)

    assert await recorded(conn) == [1]
    assert await tables(conn) == {"first", "schema_migrations"}
    # Fixed, the next run picks up where it stopped.
    write(sql_dir, "0002_second.sql", SECOND)
    assert [m.version for m in await apply_migrations(conn, sql_dir)] == [2, 3]


async def test_concurrent_runs_apply_each_migration_once(
    empty_database_url: str, sql_dir: Path
) -> None:
    # Slow enough that both runs are in flight together; a second CREATE TABLE would fail.
    write(sql_dir, "0001_first.sql", "SELECT pg_sleep(0.3); " + FIRST)
    conns = [await asyncpg.connect(empty_database_url) for _ in range(2)]
    try:
        results = await asyncio.gather(*(apply_migrations(c, sql_dir) for c in conns))
        versions = sorted([m.version for m in result] for result in results)
        assert versions == [[], [1, 2]]
        assert sorted(await recorded(conns[0])) == [1, 2]
    finally:
        for c in conns:
            await c.close()


async def test_refuses_a_connection_inside_a_transaction(
    conn: asyncpg.Connection, sql_dir: Path
) -> None:
    async with conn.transaction():
        with pytest.raises(MigrationError, match="outside any transaction"):
            await apply_migrations(conn, sql_dir)


# -- status --------------------------------------------------------------------------------------


async def test_pending_detection(conn: asyncpg.Connection, sql_dir: Path) -> None:
    assert [m.version for m in await pending_migrations(conn, sql_dir)] == [1, 2]
    assert not await is_current(conn, sql_dir)

    await apply_migrations(conn, sql_dir)
    assert await pending_migrations(conn, sql_dir) == []
    assert await is_current(conn, sql_dir)

    write(sql_dir, "0003_third.sql", THIRD)
    assert [m.version for m in await pending_migrations(conn, sql_dir)] == [3]
    assert not await is_current(conn, sql_dir)


async def test_status_reports_changed_and_missing_files(
    conn: asyncpg.Connection, sql_dir: Path
) -> None:
    await apply_migrations(conn, sql_dir)
    write(sql_dir, "0001_first.sql", FIRST + " ")
    (sql_dir / "0002_second.sql").unlink()

    status = await migration_status(conn, sql_dir)

    assert [m.version for m in status.changed] == [1]
    assert status.missing == [2]
    assert status.pending == []
    assert not status.current


async def test_the_real_migrations_build_from_an_empty_database(conn: asyncpg.Connection) -> None:
    applied = await apply_migrations(conn)

    assert [m.version for m in applied] == [m.version for m in discover(DEFAULT_SQL_DIR)]
    assert await apply_migrations(conn) == []
    assert await is_current(conn)


async def test_the_template_database_is_migrated(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        assert await is_current(conn)
    finally:
        await conn.close()
