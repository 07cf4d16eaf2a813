"""Stopping anything: an account (with or without a protection), or every account at once.
The only module with the SQL of ``global_emergency_stop`` and ``global_emergency_events``
(``sql/0026``); the record of the working orders a stop cancelled is
:mod:`gatekeeper.adapters.stop_cancels`.

A global stop is one row, share-locked by every order decision (see
:func:`gatekeeper.adapters.decisions.decision_inputs`) and taken FOR UPDATE here, so it binds
every replica at commit, like a protection's stop. It covers every account, those first seen
after it too, and is cleared on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from gatekeeper.adapters import protections as store
from gatekeeper.adapters import users
from gatekeeper.adapters.account_lock import EVERY_ACCOUNT, wait_for_forwards
from gatekeeper.adapters.account_status import EventRow
from gatekeeper.adapters.decisions import lock_account
from gatekeeper.adapters.pg import Conn
from gatekeeper.adapters.protection_errors import EmergencyStopNotActive, StopModeTooLoose
from gatekeeper.adapters.protection_model import MANUAL_STOP_MODE, is_looser
from gatekeeper.adapters.protection_stops import clear_emergency_stop, trigger_emergency_stop
from gatekeeper.alerts import outbox
from gatekeeper.limits import StopMode
from gatekeeper.settings import RiskSettings

SYSTEM_ACTOR = store.Actor(name="system", via="system")
# Owns the protection that records a stop on an account guarded only by the defaults.
SYSTEM_USER_EMAIL = "system@gatekeeper.invalid"


# -- the system-owned protection --------------------------------------------------------------


async def system_user(conn: Conn) -> users.User:
    """The system user (created on first use; a lost race with another replica is fine)."""
    for _ in range(2):
        try:
            return await users.find_user(conn, SYSTEM_USER_EMAIL)
        except users.UserNotFound:
            pass
        try:
            async with conn.transaction():  # a savepoint: a lost race must not abort the caller
                return await users.create_user(conn, SYSTEM_USER_EMAIL, "Gatekeeper (system)")
        except users.UserExists:
            continue  # another replica created it first
    raise RuntimeError("the system user could neither be found nor created")


async def system_protection(
    conn: Conn, account: str, risk: RiskSettings, default_stop_mode: StopMode | None
) -> int:
    """The system user's protection on ``account`` (created with the configured default
    limits and stop mode when absent): it holds a stop on an account guarded only by the
    defaults. Call under the account lock (:func:`gatekeeper.adapters.decisions.lock_account`)."""
    owner = await system_user(conn)
    existing = await store.list_protections(conn, owner.id, account)
    if existing:
        return existing[0].id
    values = {
        "cash_reserve_percentage": risk.default_cash_reserve_percentage,
        "max_daily_loss_percentage": risk.default_max_daily_loss_percentage,
        "max_single_trade_percentage": risk.default_max_single_trade_percentage,
        "max_portfolio_exposure_percentage": risk.default_max_portfolio_exposure_percentage,
        "max_position_concentration_percentage": (
            risk.default_max_position_concentration_percentage
        ),
        "max_daily_trades": risk.default_max_daily_trades,
    }
    created = await store.create_protection(
        conn, owner.id, account, values, SYSTEM_ACTOR, default_stop_mode=default_stop_mode
    )
    return created.id


# -- stopping and clearing an account -------------------------------------------------------


async def stop_account(
    conn: Conn,
    account: str,
    *,
    reason: str,
    triggered_by: str,
    mode: StopMode | None,
    actor: store.Actor,
    may_loosen: bool,
    risk: RiskSettings,
    default_stop_mode: StopMode | None,
) -> list[tuple[store.Protection, bool]]:
    """Stop every protection on ``account``, whoever owns it; an account with none gets the
    system-owned one first. Returns each protection and whether this call stopped it."""
    async with conn.transaction():
        await wait_for_forwards(conn, account)  # orders already decided are sent first
        # The order path's account lock: a decision creating the same protection never races.
        await lock_account(conn, account)
        found = await store.list_protections(conn, None, account)
        if not found:
            await system_protection(conn, account, risk, default_stop_mode)
            found = await store.list_protections(conn, None, account)
        return [
            await trigger_emergency_stop(
                conn,
                protection.id,
                None,
                reason=reason,
                triggered_by=triggered_by,
                mode=mode,
                actor=actor,
                may_loosen=may_loosen,
            )
            for protection in found
        ]


async def clear_account(
    conn: Conn, account: str, *, cleared_by: str, actor: store.Actor
) -> list[store.Protection]:
    """Clear the active stop of every protection on ``account``; EmergencyStopNotActive when
    none is stopped."""
    async with conn.transaction():
        stopped = [
            p for p in await store.list_protections(conn, None, account) if p.emergency_stop_active
        ]
        if not stopped:
            raise EmergencyStopNotActive(f"account {account} has no active emergency stop")
        return [
            await clear_emergency_stop(conn, p.id, None, cleared_by=cleared_by, actor=actor)
            for p in stopped
        ]


# -- the global stop --------------------------------------------------------------------------


@dataclass(frozen=True)
class GlobalStop:
    """The global stop's state; ``mode`` is None exactly when it is not active."""

    triggered_at: datetime | None
    triggered_by: str | None
    reason: str | None
    mode: StopMode | None

    @property
    def active(self) -> bool:
        return self.triggered_at is not None


_GLOBAL = "SELECT triggered_at, triggered_by, reason, active_mode FROM global_emergency_stop"


async def global_stop(conn: Conn, *, lock: bool = False) -> GlobalStop:
    row = await conn.fetchrow(_GLOBAL + (" FOR UPDATE" if lock else ""))
    if row is None:  # the migration inserts it and a trigger keeps it
        raise RuntimeError("global_emergency_stop has no row: the schema is damaged")
    return GlobalStop(*row)


async def trigger_global_stop(
    conn: Conn,
    *,
    reason: str,
    triggered_by: str,
    mode: StopMode | None,
    actor: store.Actor,
    may_loosen: bool,
) -> tuple[GlobalStop, bool]:
    """Activate the global stop: (state, True), or (state, False) if it was active already.
    Its mode is ``mode``, else halt; reduce_only (looser) needs ``may_loosen`` (admins)."""
    if mode is not None and not may_loosen and is_looser(mode, MANUAL_STOP_MODE):
        raise StopModeTooLoose(
            f"a {mode} global stop is looser than {MANUAL_STOP_MODE}: only an admin may choose"
            f" it (ask for {MANUAL_STOP_MODE}, or leave the mode out)"
        )
    async with conn.transaction():
        await wait_for_forwards(conn, EVERY_ACCOUNT)  # orders already decided are sent first
        old = await global_stop(conn, lock=True)
        if old.active:
            return old, False
        active_mode = mode or MANUAL_STOP_MODE
        await conn.execute(
            "UPDATE global_emergency_stop SET triggered_at = now(), triggered_by = $1,"
            " reason = $2, active_mode = $3, updated_at = now()",
            triggered_by,
            reason,
            active_mode,
        )
        await _record_global_event(conn, "triggered", active_mode, triggered_by, reason, actor)
        return await global_stop(conn), True


async def clear_global_stop(conn: Conn, *, cleared_by: str, actor: store.Actor) -> GlobalStop:
    """Clear the global stop (EmergencyStopNotActive when it is not active). Per-account
    stops are untouched."""
    async with conn.transaction():
        old = await global_stop(conn, lock=True)
        if not old.active:
            raise EmergencyStopNotActive("no global emergency stop is active")
        await conn.execute(
            "UPDATE global_emergency_stop SET triggered_at = NULL, triggered_by = NULL,"
            " reason = NULL, active_mode = NULL, updated_at = now()"
        )
        await _record_global_event(conn, "cleared", old.mode, cleared_by, None, actor)
        return await global_stop(conn)


async def _record_global_event(
    conn: Conn,
    event: Literal["triggered", "cleared"],
    mode: StopMode | None,
    name: str,
    reason: str | None,
    actor: store.Actor,
) -> None:
    await conn.execute(
        "INSERT INTO global_emergency_events"
        " (event, mode, actor, reason, user_id, token_id, via)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)",
        event,
        mode,
        name,
        reason,
        actor.user_id,
        actor.token_id,
        actor.via,
    )
    alert = {"mode": mode, "actor": name, "via": actor.via, "reason": reason}  # gatekeeper.alerts
    await outbox.enqueue(conn, f"stop_{event}", outbox.ALL_ACCOUNTS, alert)


async def last_global_event_id(conn: Conn) -> int:
    """The id of the newest global stop event (0 when there is none)."""
    found: int = await conn.fetchval("SELECT coalesce(max(id), 0) FROM global_emergency_events")
    return found


async def global_events_after(conn: Conn, after_id: int) -> list[EventRow]:
    """Global stop events with an id above ``after_id``, oldest first (the status job)."""
    rows = await conn.fetch(
        "SELECT id, event, via FROM global_emergency_events WHERE id > $1 ORDER BY id", after_id
    )
    return [EventRow(row["id"], row["event"], row["via"]) for row in rows]
