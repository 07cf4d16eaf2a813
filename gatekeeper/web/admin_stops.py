"""Stop anything: ``/api/v1/emergency_stops`` handlers (thin: read, call the data layer, tell
the stop actions, render). An operator may stop any account, whoever owns its protections;
clearing is for admins, with the account (or ``all``) typed as confirmation."""

from __future__ import annotations

import logging
import re

from aiohttp import web

from gatekeeper.adapters import protections as store
from gatekeeper.adapters import stop_cancels, stops
from gatekeeper.adapters.pg import Conn
from gatekeeper.auth import Permission
from gatekeeper.web import keys
from gatekeeper.web.admin_input import InvalidRequest, read_body
from gatekeeper.web.admin_models import ACCOUNT_ID_PATTERN, ProtectionOut
from gatekeeper.web.auth import Call
from gatekeeper.web.cancel_models import WorkingOrdersOnStop, working_orders_on_stop
from gatekeeper.web.stop_models import (
    ClearStopRequest,
    GlobalStopOut,
    StopRequest,
    StopResponse,
    StopStateResponse,
)

log = logging.getLogger(__name__)


def _actor(call: Call, name: str | None) -> store.Actor:
    p = call.principal
    return store.Actor(name or p.email, "api", p.user_id, p.token_id)


async def account_cancels(conn: Conn, account: str) -> WorkingOrdersOnStop:
    """What the account's active stops did with its working orders."""
    events = await stop_cancels.active_stop_events(conn, account)
    return working_orders_on_stop(events, await stop_cancels.cancel_runs(conn, account, events))


def _json(model: StopResponse | StopStateResponse, status: int = 200) -> web.Response:
    return web.json_response(model.model_dump(mode="json"), status=status)


async def create_stop(call: Call) -> web.Response:
    body = await read_body(call.request, StopRequest)
    app = call.request.app
    actions = app.get(keys.STOP_ACTIONS)
    actor = _actor(call, body.triggered_by)
    may_loosen = call.principal.can(Permission.EDIT)
    if body.all:
        state, changed = await stops.trigger_global_stop(
            call.conn, reason=body.reason, triggered_by=actor.name, mode=body.mode,
            actor=actor, may_loosen=may_loosen,
        )  # fmt: skip
        # This replica's gauge at once; the status job (woken by this write) counts the event.
        app[keys.METRICS].global_emergency_stop_active.set(1)
        if changed:
            log.warning("GLOBAL EMERGENCY STOP triggered (mode %s)", state.mode)
            if actions is not None:
                actions.after_global_stop()
        return _json(
            StopResponse(scope="all", account_id=None, already_active=not changed,
                         global_emergency_stop=GlobalStopOut.of(state), protections=[])
        )  # fmt: skip
    account = body.account_id
    assert account is not None  # noqa: S101 - the model requires one scope
    settings = app[keys.SETTINGS]
    results = await stops.stop_account(
        call.conn, account, reason=body.reason, triggered_by=actor.name, mode=body.mode,
        actor=actor, may_loosen=may_loosen, risk=settings.risk,
        default_stop_mode=settings.admin.default_emergency_stop_mode,
    )  # fmt: skip
    changed = any(c for _, c in results)
    if changed:
        log.warning("EMERGENCY STOP triggered on account %s", account)
        if actions is not None:
            actions.after_manual_stop(account)
    return _json(
        StopResponse(
            scope="account",
            account_id=account,
            already_active=not changed,
            global_emergency_stop=GlobalStopOut.of(await stops.global_stop(call.conn)),
            protections=[ProtectionOut.of(p) for p, _ in results],
            working_orders_on_stop=await account_cancels(call.conn, account),
        )
    )


async def clear_stop(call: Call) -> web.Response:
    body = await read_body(call.request, ClearStopRequest)
    actor = _actor(call, body.cleared_by)
    if body.all:
        state = await stops.clear_global_stop(call.conn, cleared_by=actor.name, actor=actor)
        call.request.app[keys.METRICS].global_emergency_stop_active.set(0)
        log.warning("global emergency stop cleared")
        return _json(
            StopResponse(scope="all", account_id=None, already_active=True,
                         global_emergency_stop=GlobalStopOut.of(state), protections=[])
        )  # fmt: skip
    account = body.account_id
    assert account is not None  # noqa: S101 - the model requires one scope
    cleared = await stops.clear_account(call.conn, account, cleared_by=actor.name, actor=actor)
    log.warning("emergency stop cleared on account %s", account)
    return _json(
        StopResponse(
            scope="account",
            account_id=account,
            already_active=True,
            global_emergency_stop=GlobalStopOut.of(await stops.global_stop(call.conn)),
            protections=[ProtectionOut.of(p) for p in cleared],
            working_orders_on_stop=await account_cancels(call.conn, account),
        )
    )


async def stop_state(call: Call) -> web.Response:
    """The global stop, and with ``?account_id=`` that account's stops and cancels (any
    owner's: whoever may stop an account may see that it is stopped)."""
    state = await stops.global_stop(call.conn)
    account = call.request.query.get("account_id")
    if account is None:
        return _json(
            StopStateResponse(global_emergency_stop=GlobalStopOut.of(state), account_id=None,
                              protections=[], working_orders_on_stop=None)
        )  # fmt: skip
    if re.fullmatch(ACCOUNT_ID_PATTERN, account) is None:
        raise InvalidRequest("account_id: not an account number")
    found = await store.list_protections(call.conn, None, account)
    return _json(
        StopStateResponse(
            global_emergency_stop=GlobalStopOut.of(state),
            account_id=account,
            emergency_stop_active=state.active or any(p.emergency_stop_active for p in found),
            protections=[ProtectionOut.of(p) for p in found if p.emergency_stop_active],
            working_orders_on_stop=await account_cancels(call.conn, account),
        )
    )
