"""Portfolio protections, their change history and emergency stops: the only module with their
SQL. Every change runs in one transaction with its history row.

``emergency_stop_mode`` is the owner's setting (``None``: not set); a triggered stop fixes its
effective mode in ``emergency_stop_active_mode`` (see :func:`effective_stop_mode` and
``sql/0023_emergency_stop_mode_optional.sql``), and clearing the stop resets only that.

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

from gatekeeper.adapters.account_lock import (
    lock_account,
    lock_account_of_protection,
    wait_for_forwards_of_protection,
)
from gatekeeper.adapters.pg import Conn
from gatekeeper.adapters.protection_errors import (
    EmergencyStopNotActive,
    ProtectionExists,
    ProtectionNotFound,
    StopModeTooLoose,
    constraint_error,
)
from gatekeeper.adapters.protection_model import (
    SETTING_FIELDS,
    STOP_FIELDS,
    Actor,
    Protection,
    effective_stop_mode,
    is_looser,
)
from gatekeeper.alerts import outbox
from gatekeeper.limits import DEFAULTS, StopMode

__all__ = [
    "SETTING_FIELDS",
    "STOP_FIELDS",
    "Actor",
    "Protection",
    "clear_emergency_stop",
    "create_protection",
    "effective_stop_mode",
    "get_protection",
    "list_protections",
    "trigger_emergency_stop",
    "update_protection",
    "upsert_protection",
]

_COLUMNS = ", ".join(Protection.__dataclass_fields__)
_SCOPE = "id = $1 AND ($2::bigint IS NULL OR user_id = $2)"
_SETTING_PLACEHOLDERS = ", ".join(f"${index}" for index in range(3, len(SETTING_FIELDS) + 3))
_MODE = "emergency_stop_mode"
# What an update records: the settings, and the active stop's mode a new setting switches.
_UPDATE_FIELDS = (*SETTING_FIELDS, "emergency_stop_active_mode")


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
            old = await _fetch(conn, protection_id, owner, lock=True)
            row = await conn.fetchrow(
                f"UPDATE portfolio_protections SET {assignments}, updated_at = now()"  # noqa: S608
                f" WHERE {_SCOPE} RETURNING {_COLUMNS}",
                protection_id,
                owner,
                *params,
                _MODE in changes,
            )
            new = _protection(row)
            await _record_change(conn, "updated", actor, old, new, _UPDATE_FIELDS)
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


async def trigger_emergency_stop(
    conn: Conn,
    protection_id: int,
    owner: int | None,
    *,
    reason: str,
    triggered_by: str,
    mode: StopMode | None,
    actor: Actor,
    automatic: bool = False,
    may_loosen: bool = False,
) -> tuple[Protection, bool]:
    """Activate the stop: (protection, True), or (protection, False) if it was active already.

    Its mode is ``mode``, else the protection's setting, else reduce_only when ``automatic``
    (the engine's daily-loss stop) and halt otherwise; the setting itself is left as it is.
    A ``mode`` looser than the setting (halt when unset) needs ``may_loosen`` (whoever may
    edit the protection), else StopModeTooLoose is raised and nothing changes."""
    async with conn.transaction():
        if not automatic:
            # Orders already decided are sent first; none decided later passes (sql/0031).
            # The engine's own stop runs inside a decision, which holds these shared.
            await wait_for_forwards_of_protection(conn, protection_id)
        await lock_account_of_protection(conn, protection_id)
        old = await _fetch(conn, protection_id, owner, lock=True)
        if mode is not None and not may_loosen:
            _refuse_looser(mode, old)
        if old.emergency_stop_active:
            return old, False
        active_mode = effective_stop_mode(mode, old.emergency_stop_mode, automatic=automatic)
        row = await conn.fetchrow(
            f"""
            UPDATE portfolio_protections
            SET emergency_stop_triggered_at = now(), emergency_stop_triggered_by = $3,
                emergency_stop_reason = $4, emergency_stop_active_mode = $5, updated_at = now()
            WHERE {_SCOPE} RETURNING {_COLUMNS}
            """,  # noqa: S608 - constants
            protection_id,
            owner,
            triggered_by,
            reason,
            active_mode,
        )
        new = _protection(row)
        await _record_change(conn, "emergency_stop_triggered", actor, old, new, STOP_FIELDS)
        await _record_event(conn, new, "triggered", active_mode, triggered_by, reason, actor)
    return new, True


def _refuse_looser(mode: StopMode, protection: Protection) -> None:
    baseline = effective_stop_mode(None, protection.emergency_stop_mode, automatic=False)
    if is_looser(mode, baseline):
        raise StopModeTooLoose(
            f"a {mode} stop is looser than portfolio protection {protection.id}'s {baseline}:"
            f" only an admin may choose it (ask for {baseline}, or leave the mode out)"
        )


async def clear_emergency_stop(
    conn: Conn,
    protection_id: int,
    owner: int | None,
    *,
    cleared_by: str,
    actor: Actor,
) -> Protection:
    """Clear an active stop (raises EmergencyStopNotActive when there is none). The
    protection's own ``emergency_stop_mode`` setting is untouched: the next stop decides anew."""
    async with conn.transaction():
        await lock_account_of_protection(conn, protection_id)
        old = await _fetch(conn, protection_id, owner, lock=True)
        if not old.emergency_stop_active:
            raise EmergencyStopNotActive(
                f"portfolio protection {protection_id} has no active emergency stop"
            )
        row = await conn.fetchrow(
            f"""
            UPDATE portfolio_protections
            SET emergency_stop_triggered_at = NULL, emergency_stop_triggered_by = NULL,
                emergency_stop_reason = NULL, emergency_stop_active_mode = NULL,
                updated_at = now()
            WHERE {_SCOPE} RETURNING {_COLUMNS}
            """,  # noqa: S608 - constants
            protection_id,
            owner,
        )
        new = _protection(row)
        await _record_change(conn, "emergency_stop_cleared", actor, old, new, STOP_FIELDS)
        # The event names the mode of the stop it ended.
        cleared_mode = old.emergency_stop_active_mode
        await _record_event(conn, new, "cleared", cleared_mode, cleared_by, None, actor)
    return new


async def _record_event(
    conn: Conn,
    protection: Protection,
    event: Literal["triggered", "cleared"],
    mode: StopMode | None,
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
        mode,
        name,
        reason,
        actor.user_id,
        actor.token_id,
        actor.via,
    )
    # The alert (email, webhooks) of this event, in its transaction: gatekeeper.alerts.
    await outbox.enqueue_stop(
        conn, protection.id, protection.account_id, event, mode, name, reason, actor.via
    )
