"""The admin API's handlers (thin: read the request, call the data layer, render) and the one
route table that registers them and describes them in the OpenAPI document."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from aiohttp import web
from pydantic import BaseModel

from gatekeeper.adapters import history, protection_stops, stops
from gatekeeper.adapters import protections as store
from gatekeeper.adapters.protection_errors import ProtectionNotFound
from gatekeeper.auth import Permission
from gatekeeper.checks import check_order, today_figures, verdict_payload
from gatekeeper.core.parse import parse_order
from gatekeeper.web import keys
from gatekeeper.web.admin_decisions import (
    DECISION,
    DECISIONS,
    DecisionListResponse,
    DecisionResponse,
    list_decisions,
    show_decision,
)
from gatekeeper.web.admin_input import InvalidRequest, query_param, read_body
from gatekeeper.web.admin_models import (
    ACCOUNT_ID_PATTERN,
    ChangeListResponse,
    ChangeOut,
    ClearEmergencyStopRequest,
    CreateProtectionRequest,
    EmergencyEventListResponse,
    EmergencyEventOut,
    EmergencyStopRequest,
    EmergencyStopResponse,
    ProtectionListResponse,
    ProtectionOut,
    ProtectionResponse,
    StatusResponse,
    UpdateProtectionRequest,
    ValidateTradeRequest,
)
from gatekeeper.web.admin_stops import account_cancels, clear_stop, create_stop, stop_state
from gatekeeper.web.auth import ApiHandler, Call, guarded
from gatekeeper.web.stop_models import (
    ClearStopRequest,
    StopRequest,
    StopResponse,
    StopStateResponse,
)

log = logging.getLogger(__name__)

PREFIX = "/api/v1/portfolio_protections"
# validate_trade: the broker credentials to read the account's state with (a bot's own).
BROKER_AUTHORIZATION = "X-Broker-Authorization"


def _json(model: BaseModel, status: int = 200) -> web.Response:
    return web.json_response(model.model_dump(mode="json"), status=status)


def _protection_id(call: Call) -> int:
    return int(call.request.match_info["id"])


def _actor(call: Call, name: str | None = None) -> store.Actor:
    principal = call.principal
    return store.Actor(name or principal.email, "api", principal.user_id, principal.token_id)


async def list_protections(call: Call) -> web.Response:
    """The caller's own protections; ``?all=true`` (admins) lists every user's."""
    every = call.request.query.get("all", "false")
    if every not in ("true", "false"):
        raise InvalidRequest('all: must be "true" or "false"')
    owner: int | None = call.principal.user_id
    if every == "true":
        call.principal.require(Permission.READ_ALL)
        owner = None
    account_id = call.request.query.get("account_id")
    if account_id is not None and re.fullmatch(ACCOUNT_ID_PATTERN, account_id) is None:
        raise InvalidRequest("account_id: not an account number")
    found = await store.list_protections(call.conn, owner, account_id)
    return _json(ProtectionListResponse(portfolio_protections=[ProtectionOut.of(p) for p in found]))


async def show_protection(call: Call) -> web.Response:
    found = await store.get_protection(call.conn, _protection_id(call), call.principal.owner_scope)
    return _json(ProtectionResponse(portfolio_protection=ProtectionOut.of(found)))


async def _account_protections(call: Call, account_id: str) -> list[store.Protection]:
    found = await store.list_protections(call.conn, call.principal.owner_scope, account_id)
    if not found:
        raise ProtectionNotFound(f"no portfolio protection of yours for account {account_id}")
    return found


def _account_id(call: Call) -> str:
    account_id = query_param(call.request, "account_id")
    if re.fullmatch(ACCOUNT_ID_PATTERN, account_id) is None:
        raise InvalidRequest("account_id: not an account number")
    return account_id


async def status(call: Call) -> web.Response:
    account_id = _account_id(call)
    found = await _account_protections(call, account_id)
    global_stop = await stops.global_stop(call.conn)
    return _json(
        StatusResponse(
            account_id=account_id,
            emergency_stop_active=global_stop.active or any(p.emergency_stop_active for p in found),
            global_emergency_stop_active=global_stop.active,
            protections=[ProtectionOut.of(p) for p in found],
            working_orders_on_stop=await account_cancels(call.conn, account_id),
            today=await today_figures(
                call.conn, account_id, min((p.max_daily_trades for p in found), default=None)
            ),
        )
    )


async def create_protection(call: Call) -> web.Response:
    body = await read_body(call.request, CreateProtectionRequest)
    fields = body.portfolio_protection
    created = await store.create_protection(
        call.conn,
        call.principal.user_id,
        fields.account_id,
        fields.given(),
        _actor(call),
        default_stop_mode=call.request.app[keys.SETTINGS].admin.default_emergency_stop_mode,
    )
    log.info("protection %s created for account %s", created.id, created.account_id)
    return _json(ProtectionResponse(portfolio_protection=ProtectionOut.of(created)), 201)


async def update_protection(call: Call) -> web.Response:
    body = await read_body(call.request, UpdateProtectionRequest)
    changes = body.portfolio_protection.given()
    if not changes:
        raise InvalidRequest("portfolio_protection: give at least one setting to change")
    updated = await store.update_protection(
        call.conn, _protection_id(call), call.principal.owner_scope, changes, _actor(call)
    )
    log.info("protection %s updated: %s", updated.id, ", ".join(sorted(changes)))
    return _json(ProtectionResponse(portfolio_protection=ProtectionOut.of(updated)))


async def emergency_stop(call: Call) -> web.Response:
    body = await read_body(call.request, EmergencyStopRequest)
    stopped, changed = await protection_stops.trigger_emergency_stop(
        call.conn,
        _protection_id(call),
        call.principal.owner_scope,
        reason=body.reason,
        triggered_by=body.triggered_by,
        mode=body.mode,
        actor=_actor(call, body.triggered_by),
        # A mode looser than the protection's is a change of its policy: admins only.
        may_loosen=call.principal.can(Permission.EDIT),
    )
    if changed:  # counted by the status job, from the database (any origin)
        actions = call.request.app.get(keys.STOP_ACTIONS)
        if actions is not None:
            actions.after_manual_stop(stopped.account_id)  # cancel its working orders
        log.warning(
            "EMERGENCY STOP triggered on protection %s (account %s, mode %s)",
            stopped.id,
            stopped.account_id,
            stopped.emergency_stop_active_mode,
        )
    out = ProtectionOut.of(stopped)
    return _json(EmergencyStopResponse(portfolio_protection=out, already_active=not changed))


async def clear_emergency_stop(call: Call) -> web.Response:
    body = await read_body(call.request, ClearEmergencyStopRequest)
    cleared = await protection_stops.clear_emergency_stop(
        call.conn,
        _protection_id(call),
        call.principal.owner_scope,
        cleared_by=body.cleared_by,
        actor=_actor(call, body.cleared_by),
    )
    log.warning(
        "emergency stop cleared on protection %s (account %s)", cleared.id, cleared.account_id
    )
    return _json(ProtectionResponse(portfolio_protection=ProtectionOut.of(cleared)))


async def list_changes(call: Call) -> web.Response:
    found = await store.get_protection(call.conn, _protection_id(call), call.principal.owner_scope)
    changes = await history.list_changes(call.conn, found.id)
    return _json(ChangeListResponse(changes=[ChangeOut.of(c) for c in changes]))


async def list_emergency_events(call: Call) -> web.Response:
    found = await store.get_protection(call.conn, _protection_id(call), call.principal.owner_scope)
    events = await history.list_emergency_events(call.conn, found.id)
    return _json(
        EmergencyEventListResponse(emergency_events=[EmergencyEventOut.of(e) for e in events])
    )


async def validate_trade(call: Call) -> web.Response:
    """The proxy's risk engine on an order, without forwarding it. The account state comes
    from the cache, else from the broker with the ``X-Broker-Authorization`` header."""
    body = await read_body(call.request, ValidateTradeRequest)
    parse_order(body.order, allow_simple=True)  # raises InvalidOrder (400) naming the problem
    await _account_protections(call, body.account_id)
    result = await check_order(
        call.request.app[keys.ENGINE],
        body.account_id,
        body.order,
        call.request.headers.get(BROKER_AUTHORIZATION),
    )
    return web.json_response(verdict_payload(result))


@dataclass(frozen=True)
class ApiRoute:
    """One admin API route: how it is served, who may call it, and how it is documented."""

    method: str
    path: str
    handler: ApiHandler
    permission: Permission
    summary: str
    response: type[BaseModel] | None  # None: no success answer yet (validate_trade)
    request: type[BaseModel] | None = None
    status: int = 200
    query: tuple[str, ...] = ()  # required query parameters
    optional_query: tuple[str, ...] = ()
    errors: tuple[int, ...] = (401, 403)


_ID = PREFIX + r"/{id:\d{1,18}}"
STOPS = "/api/v1/emergency_stops"
READ, STOP, EDIT, CLEAR = Permission.READ, Permission.STOP, Permission.EDIT, Permission.CLEAR

ROUTES: tuple[ApiRoute, ...] = (
    ApiRoute("GET", PREFIX, list_protections, READ,
             "Your protections (admins: every user's with all=true)", ProtectionListResponse,
             optional_query=("account_id", "all"), errors=(400, 401, 403)),
    ApiRoute("POST", PREFIX, create_protection, EDIT, "Create a protection for your user",
             ProtectionResponse, CreateProtectionRequest, 201, errors=(400, 401, 403, 409, 422)),
    ApiRoute("GET", PREFIX + "/status", status, READ,
             "Settings and emergency-stop state of an account's protections",
             StatusResponse, query=("account_id",), errors=(400, 401, 403, 404)),
    ApiRoute("POST", PREFIX + "/validate_trade", validate_trade, READ,
             "Run the risk engine on an order without forwarding it (account state from the"
             " cache, else from the broker with the X-Broker-Authorization header)",
             None, ValidateTradeRequest, errors=(400, 401, 403, 404, 503)),
    ApiRoute("GET", _ID, show_protection, READ, "One protection", ProtectionResponse,
             errors=(401, 403, 404)),
    ApiRoute("PATCH", _ID, update_protection, EDIT, "Change settings of a protection",
             ProtectionResponse, UpdateProtectionRequest, errors=(400, 401, 403, 404, 422)),
    ApiRoute("POST", _ID + "/emergency_stop", emergency_stop, STOP,
             "Trigger the emergency stop (idempotent)", EmergencyStopResponse,
             EmergencyStopRequest, errors=(400, 401, 403, 404, 422)),
    ApiRoute("DELETE", _ID + "/clear_emergency_stop", clear_emergency_stop, CLEAR,
             'Clear the emergency stop (needs confirm: "true")', ProtectionResponse,
             ClearEmergencyStopRequest, errors=(400, 401, 403, 404, 409, 422)),
    ApiRoute("GET", _ID + "/changes", list_changes, READ,
             "Every change to a protection (append-only history)", ChangeListResponse,
             errors=(401, 403, 404)),
    ApiRoute("GET", _ID + "/emergency_events", list_emergency_events, READ,
             "Every emergency stop triggered or cleared (append-only)",
             EmergencyEventListResponse, errors=(401, 403, 404)),
    ApiRoute("GET", STOPS, stop_state, READ,
             "The global stop; with account_id, that account's stops and working-order cancels",
             StopStateResponse, optional_query=("account_id",), errors=(400, 401, 403)),
    ApiRoute("POST", STOPS, create_stop, STOP,
             "Stop an account (any owner's; one with no protection gets the system-owned one)"
             " or, with all: true, every account (idempotent)", StopResponse, StopRequest,
             errors=(400, 401, 403, 422)),
    ApiRoute("DELETE", STOPS, clear_stop, CLEAR,
             "Clear an account's stops, or the global stop (confirm: the account_id, or"
             ' "all")', StopResponse, ClearStopRequest, errors=(400, 401, 403, 409, 422)),
    ApiRoute("GET", DECISIONS, list_decisions, READ,
             "Risk decisions, newest first (admins: every account's; others: their"
             " protections' accounts). since/until: today, YYYY-MM-DD (New York), 15m/2h/7d"
             " back, or ISO 8601 with offset; code: one of the decision's codes; limit 1-500"
             " (50); cursor: the previous page's next_cursor", DecisionListResponse,
             optional_query=("account_id", "since", "until", "verdict", "code", "limit",
                             "cursor"), errors=(400, 401, 403, 404)),
    ApiRoute("GET", DECISION, show_decision, READ,
             "One decision in full: the audit row, its order summary and every outcome",
             DecisionResponse, errors=(400, 401, 403, 404)),
)  # fmt: skip


def add_admin_api(app: web.Application) -> None:
    """Register every route of :data:`ROUTES` behind authentication and its role check."""
    for route in ROUTES:
        app.router.add_route(route.method, route.path, guarded(route.permission, route.handler))
