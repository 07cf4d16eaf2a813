"""Portfolio protections and their change history: listing, reading, creating and updating
them. Every change runs in one transaction with its history row.

A protection's emergency stop is :mod:`gatekeeper.adapters.protection_stops`; it changes the
same rows, with this module's :data:`COLUMNS`, :data:`SCOPE`, :func:`protection_of`,
:func:`fetch_protection` and :func:`record_change`.

``owner`` arguments scope a query to one user's protections; ``None`` means all (admins, the
CLI). A protection outside the scope is reported as not found, so its existence does not leak.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from gatekeeper.adapters.account_lock import lock_account, lock_account_of_protection
from gatekeeper.adapters.pg import Conn
from gatekeeper.adapters.protection_errors import (
    ProtectionExists,
    ProtectionNotFound,
    constraint_error,
)
from gatekeeper.adapters.protection_model import SETTING_FIELDS, Actor, Protection
from gatekeeper.limits import DEFAULTS, StopMode

__all__ = [
    "COLUMNS",
    "SCOPE",
    "SETTING_FIELDS",
    "Actor",
    "Protection",
    "create_protection",
    "fetch_protection",
    "get_protection",
    "list_protections",
    "protection_of",
    "record_change",
    "update_protection",
    "upsert_protection",
]

# The columns of a Protection, in its field order.
COLUMNS = ", ".join(Protection.__dataclass_fields__)
# One protection ($1) within an owner's scope ($2; NULL: all).
SCOPE = "id = $1 AND ($2::bigint IS NULL OR user_id = $2)"
_SETTING_PLACEHOLDERS = ", ".join(f"${index}" for index in range(3, len(SETTING_FIELDS) + 3))
_MODE = "emergency_stop_mode"
# What an update records: the settings, and the active stop's mode a new setting switches.
_UPDATE_FIELDS = (*SETTING_FIELDS, "emergency_stop_active_mode")


def protection_of(row: asyncpg.Record | None) -> Protection:
    """The Protection of a row a statement returned; ``None`` raises RuntimeError."""
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
        f"SELECT {COLUMNS} FROM portfolio_protections"  # noqa: S608 - constant column list
        " WHERE ($1::bigint IS NULL OR user_id = $1) AND ($2::text IS NULL OR account_id = $2)"
        " ORDER BY account_id, id",
        owner,
        account_id,
    )
    return [protection_of(row) for row in rows]


async def get_protection(conn: Conn, protection_id: int, owner: int | None) -> Protection:
    return await fetch_protection(conn, protection_id, owner, lock=False)


async def fetch_protection(
    conn: Conn, protection_id: int, owner: int | None, *, lock: bool
) -> Protection:
    """The protection ``protection_id`` in ``owner``'s scope (ProtectionNotFound outside it),
    locked ``FOR UPDATE`` when ``lock``."""
    row = await conn.fetchrow(
        f"SELECT {COLUMNS} FROM portfolio_protections WHERE {SCOPE}"  # noqa: S608 - constants
        + (" FOR UPDATE" if lock else ""),
        protection_id,
        owner,
    )
    if row is None:
        raise ProtectionNotFound(f"no portfolio protection with id {protection_id}")
    return protection_of(row)


async def record_change(
    conn: Conn,
    action: str,
    actor: Actor,
    old: Protection | None,
    new: Protection,
    fields: tuple[str, ...],
) -> None:
    """Append the ``protection_changes`` row of ``action`` on ``new``: who, and the ``fields``
    of ``old`` (``None`` for a new protection) and of ``new``."""
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
    default_stop_mode: StopMode | None = None,
) -> Protection:
    """Insert a protection for ``owner`` on ``account_id``; unset settings take the defaults.

    ``emergency_stop_mode`` absent from ``settings`` takes ``default_stop_mode`` (the
    configured one); present and ``None``, it stays unset."""
    values = {**DEFAULTS, _MODE: default_stop_mode, **settings}
    try:
        async with conn.transaction():
            await lock_account(conn, account_id)  # the audit chain's lock order (account_lock)
            row = await conn.fetchrow(
                f"""
                INSERT INTO portfolio_protections (user_id, account_id, {", ".join(SETTING_FIELDS)})
                VALUES ($1, $2, {_SETTING_PLACEHOLDERS})
                RETURNING {COLUMNS}
                """,  # noqa: S608 - constant column lists
                owner,
                account_id,
                *(values[field] for field in SETTING_FIELDS),
            )
            created = protection_of(row)
            await record_change(conn, "created", actor, None, created, SETTING_FIELDS)
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
    """Apply ``changes`` (settings only) and record old and new values.

    A ``None`` value leaves a setting as it is, except ``emergency_stop_mode``: present with
    ``None``, it becomes unset. A new ``halt``/``reduce_only`` also switches an active stop to
    it at once (escalate to halt, or let closes through, without clearing the stop); unsetting
    the mode leaves an active stop's mode as it is."""
    params = [changes.get(field) for field in SETTING_FIELDS]
    mode = f"${SETTING_FIELDS.index(_MODE) + 3}"
    assignments = ", ".join(
        f"{field} = coalesce(${index}, {field})"
        for index, field in enumerate(SETTING_FIELDS, 3)
        if field != _MODE
    )
    given = len(SETTING_FIELDS) + 3
    assignments += (
        f", {_MODE} = CASE WHEN ${given}::boolean THEN {mode}::text ELSE {_MODE} END"
        ", emergency_stop_active_mode = CASE"
        f" WHEN emergency_stop_triggered_at IS NOT NULL AND {mode}::text IS NOT NULL"
        f" THEN {mode}::text ELSE emergency_stop_active_mode END"
    )
    try:
        async with conn.transaction():
            await lock_account_of_protection(conn, protection_id)
            old = await fetch_protection(conn, protection_id, owner, lock=True)
            row = await conn.fetchrow(
                f"UPDATE portfolio_protections SET {assignments}, updated_at = now()"  # noqa: S608
                f" WHERE {SCOPE} RETURNING {COLUMNS}",
                protection_id,
                owner,
                *params,
                _MODE in changes,
            )
            new = protection_of(row)
            await record_change(conn, "updated", actor, old, new, _UPDATE_FIELDS)
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
    default_stop_mode: StopMode | None = None,
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
