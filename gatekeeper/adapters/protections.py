"""Portfolio protections, their change history and emergency stops: the only module with their
SQL. Every change runs in one transaction with its history row.

``owner`` arguments scope a query to one user's protections; ``None`` means all (admins, the
CLI). A protection outside the scope is reported as not found, so its existence does not leak.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

import asyncpg

from gatekeeper.adapters.pg import Conn
from gatekeeper.adapters.protection_errors import (
    EmergencyStopNotActive,
    ProtectionExists,
    ProtectionNotFound,
    constraint_error,
)
from gatekeeper.adapters.protection_model import SETTING_FIELDS, STOP_FIELDS, Actor, Protection
from gatekeeper.limits import DEFAULTS, StopMode

__all__ = [
    "SETTING_FIELDS",
    "STOP_FIELDS",
    "Actor",
    "Protection",
    "clear_emergency_stop",
    "create_protection",
    "get_protection",
    "list_protections",
    "trigger_emergency_stop",
    "update_protection",
    "upsert_protection",
]

_COLUMNS = ", ".join(Protection.__dataclass_fields__)
_SCOPE = "id = $1 AND ($2::bigint IS NULL OR user_id = $2)"


def _protection(row: asyncpg.Record | None) -> Protection:
    if row is None:  # RETURNING of a row this transaction holds locked
        raise RuntimeError("portfolio protection vanished inside its own transaction")
    return Protection(**dict(row))


def _json_values(protection: Protection, fields: tuple[str, ...]) -> str:
    values = asdict(protection)
    return json.dumps({field: _jsonable(values[field]) for field in fields})


def _jsonable(value: object) -> object:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


async def list_protections(
    conn: Conn, owner: int | None, account_id: str | None = None
) -> list[Protection]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM portfolio_protections"  # noqa: S608 - constant column list
        " WHERE ($1::bigint IS NULL OR user_id = $1) AND ($2::text IS NULL OR account_id = $2)"
        " ORDER BY account_id, id",
        owner,
        account_id,
    )
    return [_protection(row) for row in rows]


async def get_protection(conn: Conn, protection_id: int, owner: int | None) -> Protection:
    return await _fetch(conn, protection_id, owner, lock=False)


async def _fetch(conn: Conn, protection_id: int, owner: int | None, *, lock: bool) -> Protection:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM portfolio_protections WHERE {_SCOPE}"  # noqa: S608 - constants
        + (" FOR UPDATE" if lock else ""),
        protection_id,
        owner,
    )
    if row is None:
        raise ProtectionNotFound(f"no portfolio protection with id {protection_id}")
    return _protection(row)


async def _record_change(
    conn: Conn,
    action: str,
    actor: Actor,
    old: Protection | None,
    new: Protection,
    fields: tuple[str, ...],
) -> None:
    await conn.execute(
        """
        INSERT INTO protection_changes
            (protection_id, account_id, action, changed_by, user_id, token_id, via,
             old_values, new_values)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9::jsonb)
        """,
        new.id,
        new.account_id,
        action,
        actor.name,
        actor.user_id,
        actor.token_id,
        actor.via,
        _json_values(old, fields) if old is not None else None,
        _json_values(new, fields),
    )


async def create_protection(
    conn: Conn,
    owner: int,
    account_id: str,
    settings: Mapping[str, Any],
    actor: Actor,
    *,
    default_stop_mode: StopMode = "halt",
) -> Protection:
    """Insert a protection for ``owner`` on ``account_id``; unset settings take the defaults."""
    values = {**DEFAULTS, "emergency_stop_mode": default_stop_mode, **settings}
    try:
        async with conn.transaction():
            row = await conn.fetchrow(
                f"""
                INSERT INTO portfolio_protections (user_id, account_id, {", ".join(SETTING_FIELDS)})
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                RETURNING {_COLUMNS}
                """,  # noqa: S608 - constant column lists
                owner,
                account_id,
                *(values[field] for field in SETTING_FIELDS),
            )
            created = _protection(row)
            await _record_change(conn, "created", actor, None, created, SETTING_FIELDS)
    except asyncpg.UniqueViolationError:
        raise ProtectionExists(
            f"this user already has a portfolio protection for account {account_id}:"
            " update it with PATCH"
        ) from None
    except asyncpg.CheckViolationError as error:
        raise constraint_error(error, values) from None
    return created


async def update_protection(
    conn: Conn,
    protection_id: int,
    owner: int | None,
    changes: Mapping[str, Any],
    actor: Actor,
) -> Protection:
    """Apply ``changes`` (settings only) and record old and new values."""
    params = [changes.get(field) for field in SETTING_FIELDS]
    assignments = ", ".join(
        f"{field} = coalesce(${index}, {field})" for index, field in enumerate(SETTING_FIELDS, 3)
    )
    try:
        async with conn.transaction():
            old = await _fetch(conn, protection_id, owner, lock=True)
            row = await conn.fetchrow(
                f"UPDATE portfolio_protections SET {assignments}, updated_at = now()"  # noqa: S608
                f" WHERE {_SCOPE} RETURNING {_COLUMNS}",
                protection_id,
                owner,
                *params,
            )
            new = _protection(row)
            await _record_change(conn, "updated", actor, old, new, SETTING_FIELDS)
    except asyncpg.CheckViolationError as error:
        raise constraint_error(error, changes) from None
    return new


async def upsert_protection(
    conn: Conn,
    owner: int,
    account_id: str,
    settings: Mapping[str, Any],
    actor: Actor,
    *,
    default_stop_mode: StopMode = "halt",
) -> tuple[Protection, bool]:
    """The seed's ``portfolio_protection_for(account).update!(...)``: (protection, created)."""
    async with conn.transaction():
        existing = await list_protections(conn, owner, account_id)
        if existing:
            return await update_protection(conn, existing[0].id, owner, settings, actor), False
        created = await create_protection(
            conn, owner, account_id, settings, actor, default_stop_mode=default_stop_mode
        )
        return created, True


async def trigger_emergency_stop(
    conn: Conn,
    protection_id: int,
    owner: int | None,
    *,
    reason: str,
    triggered_by: str,
    mode: StopMode | None,
    actor: Actor,
) -> tuple[Protection, bool]:
    """Activate the stop: (protection, True), or (protection, False) if it was active already."""
    fields = (*STOP_FIELDS, "emergency_stop_mode")
    async with conn.transaction():
        old = await _fetch(conn, protection_id, owner, lock=True)
        if old.emergency_stop_active:
            return old, False
        row = await conn.fetchrow(
            f"""
            UPDATE portfolio_protections
            SET emergency_stop_triggered_at = now(), emergency_stop_triggered_by = $3,
                emergency_stop_reason = $4, emergency_stop_mode = coalesce($5, emergency_stop_mode),
                updated_at = now()
            WHERE {_SCOPE} RETURNING {_COLUMNS}
            """,  # noqa: S608 - constants
            protection_id,
            owner,
            triggered_by,
            reason,
            mode,
        )
        new = _protection(row)
        await _record_change(conn, "emergency_stop_triggered", actor, old, new, fields)
        await _record_event(conn, new, "triggered", triggered_by, reason, actor)
    return new, True


async def clear_emergency_stop(
    conn: Conn,
    protection_id: int,
    owner: int | None,
    *,
    cleared_by: str,
    actor: Actor,
) -> Protection:
    """Clear an active stop (raises EmergencyStopNotActive when there is none)."""
    async with conn.transaction():
        old = await _fetch(conn, protection_id, owner, lock=True)
        if not old.emergency_stop_active:
            raise EmergencyStopNotActive(
                f"portfolio protection {protection_id} has no active emergency stop"
            )
        row = await conn.fetchrow(
            f"""
            UPDATE portfolio_protections
            SET emergency_stop_triggered_at = NULL, emergency_stop_triggered_by = NULL,
                emergency_stop_reason = NULL, updated_at = now()
            WHERE {_SCOPE} RETURNING {_COLUMNS}
            """,  # noqa: S608 - constants
            protection_id,
            owner,
        )
        new = _protection(row)
        await _record_change(conn, "emergency_stop_cleared", actor, old, new, STOP_FIELDS)
        await _record_event(conn, new, "cleared", cleared_by, None, actor)
    return new


async def _record_event(
    conn: Conn,
    protection: Protection,
    event: Literal["triggered", "cleared"],
    name: str,
    reason: str | None,
    actor: Actor,
) -> None:
    await conn.execute(
        """
        INSERT INTO emergency_events
            (protection_id, account_id, event, mode, actor, reason, user_id, token_id, via)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
        """,
        protection.id,
        protection.account_id,
        event,
        protection.emergency_stop_mode,
        name,
        reason,
        actor.user_id,
        actor.token_id,
        actor.via,
    )
