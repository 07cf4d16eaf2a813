"""The console's two writes: STOP an account and clear its stop. Both go through the same
data layer and request models as the admin API's ``/api/v1/emergency_stops``
(gatekeeper.adapters.stops, gatekeeper.web.stop_models): the same lock, the same system-owned
protection for an account guarded only by the defaults, the same typed confirmation, the
same history rows and alerts. What is left here is what gatekeeper.web.admin_stops does
around them: tell the stop actions to cancel working orders, and log the stop.
"""

from __future__ import annotations

import logging

from aiohttp import web

from gatekeeper.adapters import protections as store
from gatekeeper.adapters import stops
from gatekeeper.adapters.pg import Conn
from gatekeeper.auth import Permission, Principal
from gatekeeper.errors import BadRequest, Unprocessable
from gatekeeper.web import keys
from gatekeeper.web.admin_input import parse
from gatekeeper.web.stop_models import ClearStopRequest, StopRequest

log = logging.getLogger(__name__)


class ConfirmationMismatch(Unprocessable):
    code = "confirmation_mismatch"


def _actor(principal: Principal) -> store.Actor:
    # "api": the console is the admin listener, acting with the logged-in user's token.
    return store.Actor(principal.email, "api", principal.user_id, principal.token_id)


async def stop_account(
    app: web.Application,
    conn: Conn,
    principal: Principal,
    account: str,
    reason: str,
    mode: str | None,
) -> bool:
    """Stop every protection on ``account``; True if this call stopped any (False: it was
    stopped already). Raises the admin API's errors (422 for a bad reason or mode, 403 for
    a mode looser than the protection's without the admin role)."""
    request = parse(StopRequest, {"account_id": account, "reason": reason, "mode": mode})
    settings = app[keys.SETTINGS]
    results = await stops.stop_account(
        conn, account, reason=request.reason, triggered_by=principal.email, mode=request.mode,
        actor=_actor(principal), may_loosen=principal.can(Permission.EDIT), risk=settings.risk,
        default_stop_mode=settings.admin.default_emergency_stop_mode,
    )  # fmt: skip
    changed = any(stopped for _, stopped in results)
    if changed:
        log.warning("EMERGENCY STOP triggered on account %s (console)", account)
        actions = app.get(keys.STOP_ACTIONS)
        if actions is not None:
            actions.after_manual_stop(account)  # cancel its working orders
    return changed


async def clear_account(conn: Conn, principal: Principal, account: str, confirm: str) -> int:
    """Clear the account's stops when ``confirm`` is the account number typed again (422
    otherwise; 409 when it is not stopped). Returns how many protections were cleared."""
    try:
        parse(ClearStopRequest, {"account_id": account, "confirm": confirm})
    except (BadRequest, Unprocessable):
        raise ConfirmationMismatch(
            f"type the account number {account} exactly to confirm"
        ) from None
    cleared = await stops.clear_account(
        conn, account, cleared_by=principal.email, actor=_actor(principal)
    )
    log.warning("emergency stop cleared on account %s (console)", account)
    return len(cleared)
