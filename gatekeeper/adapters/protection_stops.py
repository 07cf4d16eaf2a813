"""A portfolio protection's emergency stop: triggering and clearing it, each in one transaction
with the protection's change row (:func:`gatekeeper.adapters.protections.record_change`), its
``emergency_events`` row and its alert (:mod:`gatekeeper.alerts.outbox`). Stopping a whole
account, with or without a protection, or every account is :mod:`gatekeeper.adapters.stops`.

``emergency_stop_mode`` is the owner's setting (``None``: not set); a triggered stop fixes its
effective mode in ``emergency_stop_active_mode`` (see :func:`effective_stop_mode` and
``sql/0023_emergency_stop_mode_optional.sql``), and clearing the stop resets only that.

``owner`` arguments scope the stop to one user's protections, as in
:mod:`gatekeeper.adapters.protections`; ``None`` means all, and a protection outside the scope
is reported as not found.
"""

from __future__ import annotations

from typing import Literal

from gatekeeper.adapters.account_lock import (
    lock_account_of_protection,
    wait_for_forwards_of_protection,
)
from gatekeeper.adapters.pg import Conn
from gatekeeper.adapters.protection_errors import EmergencyStopNotActive, StopModeTooLoose
from gatekeeper.adapters.protection_model import (
    STOP_FIELDS,
    Actor,
    Protection,
    effective_stop_mode,
    is_looser,
)
from gatekeeper.adapters.protections import (
    COLUMNS,
    SCOPE,
    fetch_protection,
    protection_of,
    record_change,
)
from gatekeeper.alerts import outbox
from gatekeeper.limits import StopMode

__all__ = ["clear_emergency_stop", "trigger_emergency_stop"]


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
        old = await fetch_protection(conn, protection_id, owner, lock=True)
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
            WHERE {SCOPE} RETURNING {COLUMNS}
            """,  # noqa: S608 - constants
            protection_id,
            owner,
            triggered_by,
            reason,
            active_mode,
        )
        new = protection_of(row)
        await record_change(conn, "emergency_stop_triggered", actor, old, new, STOP_FIELDS)
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
        old = await fetch_protection(conn, protection_id, owner, lock=True)
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
            WHERE {SCOPE} RETURNING {COLUMNS}
            """,  # noqa: S608 - constants
            protection_id,
            owner,
        )
        new = protection_of(row)
        await record_change(conn, "emergency_stop_cleared", actor, old, new, STOP_FIELDS)
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
