"""The schema itself: the seed's Steps 1 and 2, the one definition of the ranges, and the
append-only history enforced by the database (as the application role, too)."""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import AsyncIterator
from decimal import Decimal

import asyncpg
import pytest

from gatekeeper.adapters import protections as store
from gatekeeper.adapters import users
from gatekeeper.adapters.migrations import is_current
from gatekeeper.adapters.protection_errors import ConstraintViolation, constraint_error
from gatekeeper.adapters.protection_stops import trigger_emergency_stop
from gatekeeper.limits import DEFAULTS, INTEGER_FIELDS, LIMITS, LIMITS_BY_CONSTRAINT
from gatekeeper.migrate import migrate_and_report
from tests.fixtures.admin import run_cli

# The seed's Step 1 output, line for line (the seed's migration is our 0002).
SEED_STEP_1 = """\
-- create_table(:portfolio_protections)
-- add_index(:portfolio_protections, [:user_id, :account_id], {:unique=>true})
-- add_index(:portfolio_protections, :account_id)
-- add_index(:portfolio_protections, :active)
-- add_index(:portfolio_protections, :emergency_stop_triggered_at)
-- add_check_constraint(:portfolio_protections, "cash_reserve_percentage >= 20.0 AND cash_reserve_percentage <= 50.0", {:name=>"cash_reserve_range_check"})
-- add_check_constraint(:portfolio_protections, "max_daily_loss_percentage > 0 AND max_daily_loss_percentage <= 15.0", {:name=>"daily_loss_range_check"})
-- add_check_constraint(:portfolio_protections, "max_single_trade_percentage > 0 AND max_single_trade_percentage <= 20.0", {:name=>"single_trade_range_check"})
-- add_check_constraint(:portfolio_protections, "max_portfolio_exposure_percentage >= 50.0 AND max_portfolio_exposure_percentage <= 85.0", {:name=>"exposure_range_check"})
"""  # noqa: E501

CLI = store.Actor("test", "cli")
INSERT = """
INSERT INTO portfolio_protections (user_id, account_id{columns})
VALUES ($1, 'TEST123'{placeholders}) RETURNING id
"""


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(database_url)
    try:
        yield connection
    finally:
        await connection.close()


async def a_user(conn: asyncpg.Connection, email: str = "risk-test@example.com") -> int:
    user_id: int = await conn.fetchval("INSERT INTO users (email) VALUES ($1) RETURNING id", email)
    return user_id


async def insert(conn: asyncpg.Connection, user_id: int, **values: object) -> int:
    columns = "".join(f", {name}" for name in values)
    placeholders = "".join(f", ${i}" for i in range(2, len(values) + 2))
    sql = INSERT.format(columns=columns, placeholders=placeholders)
    protection_id: int = await conn.fetchval(sql, user_id, *values.values())
    return protection_id


# -- Step 1 -----------------------------------------------------------------------------------


async def test_step_1_migration_output_from_an_empty_database(empty_database_url: str) -> None:
    out = io.StringIO()
    await migrate_and_report(empty_database_url, out)
    text = out.getvalue()
    assert re.search(r"^== 0002 create_portfolio_protections: migrating =+$", text, re.M)
    assert SEED_STEP_1 in text
    assert re.search(
        r"^== 0002 create_portfolio_protections: migrated \(\d+\.\d{4}s\) =+$", text, re.M
    )
    assert text.index("0001 create_users_and_api_tokens: migrated") < text.index("0002")

    again = io.StringIO()
    await migrate_and_report(empty_database_url, again)
    assert again.getvalue().startswith("nothing to migrate")


async def test_gatekeeper_migrate_command(empty_database_url: str) -> None:
    first = await run_cli(empty_database_url, "migrate")
    assert first.returncode == 0, first.stderr
    assert "-- add_index(:portfolio_protections, :active)" in first.stdout
    second = await run_cli(empty_database_url, "migrate")
    assert second.returncode == 0
    assert "nothing to migrate" in second.stdout


# -- Step 2 -----------------------------------------------------------------------------------


async def test_step_2_constraint_rejects_a_low_cash_reserve(conn: asyncpg.Connection) -> None:
    user_id = await a_user(conn)
    with pytest.raises(asyncpg.CheckViolationError) as caught:
        await insert(conn, user_id, cash_reserve_percentage=Decimal("10.0"))
    assert caught.value.constraint_name == "cash_reserve_range_check"
    # The same words the API gives when it catches the value first.
    error = constraint_error(caught.value, {"cash_reserve_percentage": Decimal("10.0")})
    assert error.status == 422
    assert error.message == (
        "cash_reserve_percentage must be between 20 and 50 (cash_reserve_range_check); got 10.0"
    )


async def test_step_2_valid_values_are_accepted(conn: asyncpg.Connection) -> None:
    user_id = await a_user(conn)
    protection_id = await insert(
        conn,
        user_id,
        cash_reserve_percentage=Decimal("25.0"),
        max_daily_loss_percentage=Decimal("5.0"),
        max_single_trade_percentage=Decimal("10.0"),
        max_portfolio_exposure_percentage=Decimal("75.0"),
    )
    assert protection_id >= 1
    with pytest.raises(asyncpg.UniqueViolationError):  # unique (user_id, account_id)
        await insert(conn, user_id)


async def test_column_defaults_are_the_seed_step_7_values(conn: asyncpg.Connection) -> None:
    user_id = await a_user(conn)
    protection_id = await insert(conn, user_id)
    row = await conn.fetchrow("SELECT * FROM portfolio_protections WHERE id = $1", protection_id)
    assert row is not None
    assert {name: row[name] for name in DEFAULTS} == dict(DEFAULTS)
    assert row["emergency_stop_mode"] is None  # not set explicitly (0023)
    assert row["emergency_stop_active_mode"] is None
    assert row["emergency_stop_triggered_at"] is None


async def test_percentages_are_numeric_columns(conn: asyncpg.Connection) -> None:
    rows = await conn.fetch(
        "SELECT column_name, data_type FROM information_schema.columns"
        " WHERE table_name = 'portfolio_protections' AND column_name LIKE '%percentage'"
    )
    assert len(rows) == 8  # the seed's five and three price collars (sql/0024)
    assert {row["data_type"] for row in rows} == {"numeric"}


async def test_indexes_of_the_seed(conn: asyncpg.Connection) -> None:
    rows = await conn.fetch(
        "SELECT indexdef FROM pg_indexes WHERE tablename = 'portfolio_protections'"
    )
    definitions = {re.sub(r".* USING btree ", "", row["indexdef"]) for row in rows}
    assert {
        "(user_id, account_id)",
        "(account_id)",
        "(active)",
        "(emergency_stop_triggered_at)",
    } <= (definitions)
    assert any(
        "UNIQUE" in row["indexdef"] and "(user_id, account_id)" in row["indexdef"] for row in rows
    )


# -- one definition of the ranges ---------------------------------------------------------------

_COMPARISON = re.compile(r"\((\w+) (>=|>|<=|<) \(?([\d.]+)\)?(?:::numeric)?\)")


async def test_python_limits_match_the_database_check_constraints(
    conn: asyncpg.Connection,
) -> None:
    rows = await conn.fetch(
        "SELECT conname, pg_get_constraintdef(oid) AS definition FROM pg_constraint"
        " WHERE conrelid = 'portfolio_protections'::regclass AND contype = 'c'"
    )
    checks = {row["conname"]: row["definition"] for row in rows}
    range_checks = {name for name in checks if name.endswith("_range_check")}
    assert range_checks == set(LIMITS_BY_CONSTRAINT)
    for limit in LIMITS:
        comparisons = _COMPARISON.findall(checks[limit.constraint])
        assert len(comparisons) == 2, checks[limit.constraint]
        (low_field, low_op, low), (high_field, high_op, high) = comparisons
        assert low_field == high_field == limit.field
        assert low_op == (">=" if limit.lower_inclusive else ">")
        assert high_op == ("<=" if limit.upper_inclusive else "<")
        assert Decimal(low) == limit.lower
        assert Decimal(high) == limit.upper


async def test_the_database_accepts_exactly_what_the_limits_allow(
    conn: asyncpg.Connection,
) -> None:
    """Probe each bound and one step beyond it: the database and limits.py agree on each."""
    user_id = await a_user(conn)
    for limit in LIMITS:
        whole = limit.field in INTEGER_FIELDS
        step = Decimal(1) if whole else Decimal("0.01")
        for value in (limit.lower - step, limit.lower, limit.lower + step,
                      limit.upper - step, limit.upper, limit.upper + step):  # fmt: skip
            typed: object = int(value) if whole else value
            fired = await _fired_constraint(conn, user_id, limit.field, typed)
            assert fired == (None if limit.allows(value) else limit.constraint), (limit, value)


async def _fired_constraint(
    conn: asyncpg.Connection, user_id: int, field: str, value: object
) -> str | None:
    """The CHECK constraint an insert with ``field = value`` fires (rolled back either way)."""
    try:
        async with conn.transaction():
            await insert(conn, user_id, **{field: value})
            raise _Rollback
    except _Rollback:
        return None
    except asyncpg.CheckViolationError as error:
        return error.constraint_name


class _Rollback(Exception):
    pass


# -- append-only history ------------------------------------------------------------------------


async def _history_rows(conn: asyncpg.Connection) -> tuple[int, int]:
    user_id = await a_user(conn)
    protection_id = await insert(conn, user_id)
    await conn.execute(
        "INSERT INTO protection_changes (protection_id, account_id, action, changed_by, via,"
        " new_values) VALUES ($1, 'TEST123', 'created', 'test', 'cli', '{}'::jsonb)",
        protection_id,
    )
    await conn.execute(
        "INSERT INTO emergency_events (protection_id, account_id, event, mode, actor, reason, via)"
        " VALUES ($1, 'TEST123', 'triggered', 'halt', 'test', 'why', 'cli')",
        protection_id,
    )
    return user_id, protection_id


@pytest.mark.parametrize("table", ["protection_changes", "emergency_events"])
@pytest.mark.parametrize(
    "statement",
    ["UPDATE {table} SET account_id = 'OTHER'", "DELETE FROM {table}", "TRUNCATE {table}"],
)
async def test_history_is_append_only_even_for_the_owner(
    conn: asyncpg.Connection, table: str, statement: str
) -> None:
    await _history_rows(conn)
    # TRUNCATE of emergency_events is refused first by the foreign key of the append-only
    # stop_cancel_runs (sql/0026) that references it: refused either way.
    refusals = (asyncpg.RestrictViolationError, asyncpg.FeatureNotSupportedError)
    with pytest.raises(refusals, match=r"append-only|foreign key"):
        await conn.execute(statement.format(table=table))
    assert await conn.fetchval(f"SELECT count(*) FROM {table}") == 1  # noqa: S608


@pytest.mark.parametrize("table", ["protection_changes", "emergency_events"])
async def test_the_application_role_may_only_read_and_append_history(
    conn: asyncpg.Connection, table: str
) -> None:
    _, protection_id = await _history_rows(conn)
    async with conn.transaction():
        await conn.execute("SET LOCAL ROLE gatekeeper_app")
        assert await conn.fetchval("SELECT current_user") == "gatekeeper_app"
        assert (
            await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            is False
        )
        assert await conn.fetchval(f"SELECT count(*) FROM {table}") == 1  # noqa: S608
        for statement in (
            f"UPDATE {table} SET account_id = 'OTHER'",  # noqa: S608
            f"DELETE FROM {table}",  # noqa: S608
            f"TRUNCATE {table}",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                async with conn.transaction():  # a savepoint: the outer one survives
                    await conn.execute(statement)
        # ...while the service's own work still runs as that role.
        await conn.execute(
            "UPDATE portfolio_protections SET active = false WHERE id = $1", protection_id
        )
        await conn.execute(
            "INSERT INTO emergency_events (protection_id, account_id, event, actor, via)"
            " VALUES ($1, 'TEST123', 'cleared', 'test', 'api')",
            protection_id,
        )
    assert await conn.fetchval("SELECT current_user") != "gatekeeper_app"


async def test_the_application_role_is_not_privileged(conn: asyncpg.Connection) -> None:
    row = await conn.fetchrow(
        "SELECT rolsuper, rolcreaterole, rolcreatedb, rolbypassrls, rolcanlogin"
        " FROM pg_roles WHERE rolname = 'gatekeeper_app'"
    )
    assert row is not None
    assert not any(row.values())


# -- the data layer's last line of defence ----------------------------------------------------


async def test_a_check_the_caller_missed_becomes_the_same_422(pg_pool: asyncpg.Pool) -> None:
    async with pg_pool.acquire() as conn:
        user = await users.create_user(conn, "direct@example.com")
        with pytest.raises(ConstraintViolation) as caught:
            await store.create_protection(
                conn, user.id, "TEST123", {"max_daily_loss_percentage": Decimal("15.5")}, CLI
            )
        assert caught.value.message == (
            "max_daily_loss_percentage must be greater than 0 and at most 15"
            " (daily_loss_range_check); got 15.5"
        )
        created = await store.create_protection(conn, user.id, "TEST123", {}, CLI)
        with pytest.raises(ConstraintViolation, match="exposure_range_check"):
            await store.update_protection(
                conn, created.id, None, {"max_portfolio_exposure_percentage": Decimal(86)}, CLI
            )
        assert await conn.fetchval("SELECT count(*) FROM protection_changes") == 1


async def test_concurrent_stops_record_one_event(pg_pool: asyncpg.Pool) -> None:
    async with pg_pool.acquire() as conn:
        user = await users.create_user(conn, "ops@example.com")
        protection = await store.create_protection(conn, user.id, "TEST123", {}, CLI)

    async def stop(name: str) -> bool:
        async with pg_pool.acquire() as conn:
            _, changed = await trigger_emergency_stop(
                conn, protection.id, None, reason="race", triggered_by=name, mode=None, actor=CLI
            )
            return changed

    results = await asyncio.gather(*(stop(f"ops{i}") for i in range(5)))
    assert sorted(results) == [False, False, False, False, True]
    async with pg_pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM emergency_events") == 1


async def test_the_application_role_can_check_readiness(conn: asyncpg.Connection) -> None:
    async with conn.transaction():
        await conn.execute("SET LOCAL ROLE gatekeeper_app")
        assert await is_current(conn)
