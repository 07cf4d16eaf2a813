"""``gatekeeper check``'s Postgres checks: reachable, migrations current, the guide's CHECK
constraints enforced, the protections in force, and an emergency stop's round trip. The
constraint and stop checks run in a transaction that is rolled back: nothing is changed."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from decimal import Decimal

import asyncpg

from gatekeeper.adapters import protections as store
from gatekeeper.adapters import users
from gatekeeper.adapters.migrations import migration_status
from gatekeeper.adapters.protection_stops import clear_emergency_stop, trigger_emergency_stop
from gatekeeper.cli_check_report import (
    ACTOR,
    CHECK_TIMEOUT_SECONDS,
    SMALL,
    CheckFailed,
    Report,
    check,
    decide,
    failure,
    where,
)
from gatekeeper.limits import LIMITS, Limit
from gatekeeper.orderpath.inputs import limits_of
from gatekeeper.settings import Settings


async def _postgres(conn: asyncpg.Connection, url: str) -> str:
    version = await conn.fetchval("SHOW server_version")
    return f"reachable at {where(url)} (PostgreSQL {version})"


async def _migrations(conn: asyncpg.Connection) -> str:
    status = await migration_status(conn)
    problems = [
        *(f"{m.label} not applied" for m in status.pending),
        *(f"{m.label} edited after it was applied" for m in status.changed),
        *(f"{version:04d} applied but its file is gone" for version in status.missing),
    ]
    if problems:
        raise CheckFailed("not current: " + "; ".join(problems) + " (run `gatekeeper migrate`)")
    applied = await conn.fetchval("SELECT count(*) FROM schema_migrations")
    return f"current ({applied} applied)"


class _Rollback(Exception):
    """Ends a scratch transaction: everything in it is undone."""


async def _in_rollback(
    conn: asyncpg.Connection, work: Callable[[asyncpg.Connection], Awaitable[str]]
) -> str:
    """``work`` inside a transaction that is always rolled back."""
    found = ""
    try:
        async with conn.transaction():
            found = await work(conn)
            raise _Rollback
    except _Rollback:
        pass
    return found


async def _scratch_protection(conn: asyncpg.Connection) -> store.Protection:
    tag = secrets.token_hex(4)
    user = await users.create_user(conn, f"check-{tag}@gatekeeper.invalid", "gatekeeper check")
    return await store.create_protection(conn, user.id, f"GKCHECK-{tag}", {}, ACTOR)


def _out_of_range(limit: Limit) -> Decimal:
    return limit.lower - 1 if limit.lower_inclusive else limit.lower


async def _constraints(conn: asyncpg.Connection) -> str:
    protection = await _scratch_protection(conn)
    accepted = []
    for limit in LIMITS:
        try:
            async with conn.transaction():  # a savepoint: the failed UPDATE is undone alone
                await conn.execute(
                    f"UPDATE portfolio_protections SET {limit.field} = $1 WHERE id = $2",  # noqa: S608 - field names from gatekeeper.limits
                    _out_of_range(limit),
                    protection.id,
                )
        except asyncpg.CheckViolationError as error:
            if error.constraint_name != limit.constraint:
                accepted.append(f"{limit.field} refused by {error.constraint_name}")
            continue
        accepted.append(f"{limit.field} = {_out_of_range(limit)} accepted")
    if accepted:
        raise CheckFailed("NOT enforced: " + "; ".join(accepted))
    return f"enforced ({len(LIMITS)} out-of-range settings refused; rolled back)"


async def _stop_round_trip(conn: asyncpg.Connection) -> str:
    protection = await _scratch_protection(conn)
    stopped, changed = await trigger_emergency_stop(
        conn, protection.id, None, reason="gatekeeper check", triggered_by=ACTOR.name,
        mode=None, actor=ACTOR,
    )  # fmt: skip
    seen = await store.get_protection(conn, protection.id, None)
    if not (changed and seen.emergency_stop_active):
        raise CheckFailed("the stop did not become active")
    blocked = decide(SMALL, (limits_of(seen),))
    if "emergency_stop" not in {code.value for code in blocked.codes}:
        raise CheckFailed("an order was not refused while the stop was active")
    await clear_emergency_stop(conn, protection.id, None, cleared_by=ACTOR.name, actor=ACTOR)
    cleared = await store.get_protection(conn, protection.id, None)
    if cleared.emergency_stop_active or not decide(SMALL, (limits_of(cleared),)).allowed:
        raise CheckFailed("the stop did not clear")
    events = await conn.fetchval(
        "SELECT count(*) FROM emergency_events WHERE protection_id = $1", protection.id
    )
    if events != 2:
        raise CheckFailed(f"{events} emergency events recorded, not 2")
    return (
        f"triggered ({stopped.emergency_stop_active_mode}), refused an order, cleared,"
        " both events recorded (scratch protection, rolled back)"
    )


def _describe(protection: store.Protection) -> str:
    p = protection
    stop = (
        f"EMERGENCY STOP ACTIVE ({p.emergency_stop_active_mode}) since"
        f" {p.emergency_stop_triggered_at:%Y-%m-%d %H:%M %Z} by {p.emergency_stop_triggered_by}"
        if p.emergency_stop_triggered_at is not None
        else "no stop"
    )
    return (
        f"{p.account_id} (protection {p.id}): cash reserve {p.cash_reserve_percentage}%,"
        f" daily loss {p.max_daily_loss_percentage}%, single trade"
        f" {p.max_single_trade_percentage}%, exposure {p.max_portfolio_exposure_percentage}%,"
        f" concentration {p.max_position_concentration_percentage}%,"
        f" {p.max_daily_trades} trades/day; {stop}"
    )


async def _protections(conn: asyncpg.Connection, settings: Settings) -> str:
    found = await store.list_protections(conn, None)
    active = [p for p in found if p.active]
    risk = settings.risk
    others = (
        "accounts without one are guarded by the configured defaults"
        if risk.unknown_account_policy == "defaults"
        else "orders of accounts without one are rejected"
    )
    inactive = f", {len(found) - len(active)} inactive" if len(active) < len(found) else ""
    return "\n".join([f"{len(active)} active{inactive}; {others}", *(_describe(p) for p in active)])


_DB_CHECKS = ("Migrations", "CHECK constraints", "Protections", "Emergency stop")


async def database_checks(report: Report, settings: Settings) -> None:
    if settings.database_url is None:
        report.line(False, "Postgres: database_url is not set (DATABASE_URL)")
        for title in _DB_CHECKS:
            report.line(False, f"{title}: not checked (no database)")
        return
    url = settings.database_url.get_secret_value()
    try:
        conn = await asyncpg.connect(url, timeout=CHECK_TIMEOUT_SECONDS)
    except Exception as error:  # reported, never raised: the other checks still run
        report.line(False, f"Postgres: unreachable at {where(url)} ({failure(error)})")
        for title in _DB_CHECKS:
            report.line(False, f"{title}: not checked (Postgres unreachable)")
        return
    try:
        await check(report, "Postgres", lambda: _postgres(conn, url))
        if not await check(report, "Migrations", lambda: _migrations(conn)):
            for title in _DB_CHECKS[1:]:
                report.line(False, f"{title}: not checked (schema not current)")
            return
        await check(report, "CHECK constraints", lambda: _in_rollback(conn, _constraints))
        await check(report, "Protections", lambda: _protections(conn, settings))
        await check(report, "Emergency stop", lambda: _in_rollback(conn, _stop_round_trip))
    finally:
        await conn.close()
