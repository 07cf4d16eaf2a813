"""The emergency stop a decision triggers (a daily-loss breach), written in the decision's
own transaction: the stop and the decision row commit together."""

from __future__ import annotations

import logging
from typing import Any

from gatekeeper.adapters import decisions as db
from gatekeeper.adapters import stops
from gatekeeper.adapters.protection_stops import trigger_emergency_stop
from gatekeeper.core import Decision
from gatekeeper.settings import Settings

log = logging.getLogger(__name__)


async def trigger_stops(conn: Any, account: str, decision: Decision, settings: Settings) -> None:
    """Stop every protection the decision names (actor ``system``); the configured defaults,
    which have no row to hold a stop, get one owned by the system user first, so the stop
    lasts until an admin clears it. Automatic: reduce_only unless the protection says halt,
    so the account can still be flattened."""
    trigger = decision.trigger_stop
    assert trigger is not None  # noqa: S101 - checked by the caller
    for pid in trigger.protection_ids:
        if pid.isdigit():
            protection_id = int(pid)
        else:
            await db.lock_account(conn, account)  # dry-runs come here without it
            protection_id = await stops.system_protection(
                conn, account, settings.risk, settings.admin.default_emergency_stop_mode
            )
        stopped, changed = await trigger_emergency_stop(
            conn,
            protection_id,
            None,
            reason=trigger.reason,
            triggered_by=trigger.actor,
            mode=None,
            actor=stops.SYSTEM_ACTOR,
            automatic=True,
        )
        if changed:  # a dry-run does not hold the account lock: another may have won
            log.warning(
                "emergency stop triggered on protection %s (mode %s): %s",
                protection_id,
                stopped.emergency_stop_active_mode,
                trigger.reason,
            )
