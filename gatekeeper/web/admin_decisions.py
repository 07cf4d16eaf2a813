"""``/api/v1/decisions``: the decision log, newest first, and one decision in full.

Who sees what follows the protections: admins every account's decisions, everyone else only
those of accounts they hold a protection on (another account answers 404, as its protection
would). Pages are keyset pages: ``next_cursor`` goes back as ``cursor``.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel, Field

from gatekeeper.adapters import decision_log
from gatekeeper.adapters import protections as store
from gatekeeper.adapters.decision_log import DecisionListItem, InvalidTimeBound, parse_time_bound
from gatekeeper.errors import NotFound
from gatekeeper.web.admin_input import InvalidRequest
from gatekeeper.web.admin_models import ACCOUNT_ID_PATTERN
from gatekeeper.web.auth import Call

DECISIONS = "/api/v1/decisions"
DECISION = DECISIONS + r"/{decision_id:[0-9a-fA-F-]{36}}"
DEFAULT_LIMIT = 50
_CODE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_CURSOR = re.compile(r"^[1-9]\d{0,17}$")
_VERDICTS = ("allow", "reject", "error")


class DecisionNotFound(NotFound):
    code = "decision_not_found"


# -- responses --------------------------------------------------------------------------------


class DecisionOut(BaseModel):
    id: int
    decision_id: UUID
    decided_at: datetime
    account_id: str
    route_kind: str = Field(
        description="place, complex, replace, their _dry_run forms, cancel, ..."
    )
    verdict: Literal["allow", "reject", "error"]
    codes: list[str] = Field(description="rejection codes (docs/order-path.md), empty if allowed")
    message: str
    summary: dict[str, Any] = Field(
        description="the order: legs [{symbol, action, quantity}], price, price_effect,"
        " order_type, time_in_force; {} when the order could not be read"
    )
    figures: dict[str, Any] = Field(description="the account's figures the decision used")
    outcome: str | None = Field(
        description="what the broker answered (accepted, broker_rejected, unknown, not_sent,"
        " not_placed); pending for an allowed order without an answer yet; null when nothing"
        " was forwarded"
    )
    broker_order_id: str | None

    @classmethod
    def of(cls, item: DecisionListItem) -> DecisionOut:
        return cls.model_validate(item.__dict__)


class DecisionListResponse(BaseModel):
    decisions: list[DecisionOut]
    next_cursor: str | None = Field(
        description="pass as cursor for the next (older) page; null on the last page"
    )


class OutcomeOut(BaseModel):
    id: int
    outcome: str
    http_status: int | None
    broker_order_id: str | None
    resolution: str | None = Field(description="how the reconciler found it; null if answered")
    recorded_at: datetime
    answer_body: str | None = Field(description="the broker's answer to an accepted order")


class DecisionDetailOut(DecisionOut):
    notes: list[str]
    detail: dict[str, Any] = Field(description="the whole decision as recorded (audit row)")
    trading_day: date
    trade_count: int
    reserved_orders: list[dict[str, Any]]
    replaces_order_id: str | None
    latency_ms: Decimal
    outcomes: list[OutcomeOut] = Field(description="every outcome row, oldest first")


class DecisionResponse(BaseModel):
    decision: DecisionDetailOut


# -- reading the query ------------------------------------------------------------------------


def _one(call: Call, name: str) -> str | None:
    values = call.request.query.getall(name, [])
    if len(values) > 1:
        raise InvalidRequest(f"query parameter {name} may be given once")
    return values[0] if values and values[0] != "" else None


def _bound(call: Call, name: str, now: datetime) -> datetime | None:
    text = _one(call, name)
    if text is None:
        return None
    try:
        return parse_time_bound(text, now)
    except InvalidTimeBound as error:
        raise InvalidRequest(f"{name}: {error}") from None


def _matching(call: Call, name: str, pattern: re.Pattern[str], what: str) -> str | None:
    value = _one(call, name)
    if value is not None and pattern.fullmatch(value) is None:
        raise InvalidRequest(f"{name}: {what}")
    return value


def _limit(call: Call) -> int:
    text = _one(call, "limit")
    if text is None:
        return DEFAULT_LIMIT
    if not text.isdigit() or not 1 <= int(text) <= decision_log.MAX_LIMIT:
        raise InvalidRequest(f"limit: a whole number from 1 to {decision_log.MAX_LIMIT}")
    return int(text)


async def _visible_accounts(call: Call) -> list[str] | None:
    """None: every account (admins); else the accounts of the caller's protections."""
    owner = call.principal.owner_scope
    if owner is None:
        return None
    return sorted({p.account_id for p in await store.list_protections(call.conn, owner, None)})


# -- handlers ---------------------------------------------------------------------------------


async def list_decisions(call: Call) -> web.Response:
    now = datetime.now(UTC)
    account_id = _matching(
        call, "account_id", re.compile(ACCOUNT_ID_PATTERN), "not an account number"
    )
    verdict = _one(call, "verdict")
    if verdict is not None and verdict not in _VERDICTS:
        raise InvalidRequest(f"verdict: one of {', '.join(_VERDICTS)}")
    code = _matching(call, "code", _CODE, "a rejection code such as max_single_trade")
    cursor = _matching(call, "cursor", _CURSOR, "the next_cursor of the page before")
    limit = _limit(call)
    since, until = _bound(call, "since", now), _bound(call, "until", now)
    accounts = await _visible_accounts(call)
    if account_id is not None and accounts is not None and account_id not in accounts:
        raise DecisionNotFound(f"no portfolio protection of yours for account {account_id}")
    found = await decision_log.list_decisions(
        call.conn,
        account_id=account_id,
        since=since,
        until=until,
        verdict=verdict,
        code=code,
        limit=limit,
        before_id=None if cursor is None else int(cursor),
        accounts=accounts,
    )
    next_cursor = str(found[-1].id) if len(found) == limit else None
    response = DecisionListResponse(
        decisions=[DecisionOut.of(item) for item in found], next_cursor=next_cursor
    )
    return web.json_response(response.model_dump(mode="json"))


async def show_decision(call: Call) -> web.Response:
    try:
        decision_id = UUID(call.request.match_info["decision_id"])
    except ValueError:
        raise InvalidRequest("decision_id: not a UUID") from None
    found = await decision_log.get_decision(call.conn, decision_id)
    accounts = await _visible_accounts(call)
    if found is None or (accounts is not None and found["account_id"] not in accounts):
        raise DecisionNotFound(f"no decision {decision_id} among those you may see")
    response = DecisionResponse(decision=DecisionDetailOut.model_validate(found))
    return web.json_response(response.model_dump(mode="json"))
