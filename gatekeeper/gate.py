"""The order path: parse → decide (gatekeeper.engine) → forward or reject → record the outcome.

Fails closed: nothing is forwarded unless the engine allowed it and its decision row is
committed. Every decision is logged as one ``RISK_DECISION`` line (never a token); the logger
is pinned to INFO so configuration cannot silence it.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

import asyncpg
from aiohttp import web

from gatekeeper.account_gauges import publish_decision
from gatekeeper.adapters import decisions as db
from gatekeeper.core import (
    AccountStateInvalid,
    BodyTooLarge,
    ComplexOrder,
    Order,
    OrderPatch,
    Route,
    RouteKind,
    parse_complex_order,
    parse_order,
    parse_replace,
    trading_day,
)
from gatekeeper.core.jsonstrict import loads_strict
from gatekeeper.core.media import check_json_media
from gatekeeper.engine import DB_DOWN, OrderRequest, Result
from gatekeeper.errors import (
    BadRequest,
    BrokerAuthFailed,
    DatabaseUnavailable,
    DuplicateOrder,
    GatekeeperError,
    RequestTimeout,
    RiskPathUnavailable,
    UpstreamDisconnected,
    UpstreamTimeout,
    UpstreamUnavailable,
    error_envelope,
)
from gatekeeper.metrics import Metrics
from gatekeeper.order_identity import dump, identify
from gatekeeper.web import keys
from gatekeeper.web.paths import ReservedPath, validate_headers, validate_target
from gatekeeper.web.rejection import (
    DECISION_HEADER,
    DUPLICATE_HEADER,
    error_rejection,
    risk_rejection,
)
from gatekeeper.web.render import error_response

if TYPE_CHECKING:
    from gatekeeper.web.proxy import UpstreamAnswer

# Sends the checked body upstream and reads the whole answer (gatekeeper.web.proxy).
Send = Callable[..., Awaitable["UpstreamAnswer"]]

log = logging.getLogger(__name__)
decision_log = logging.getLogger("gatekeeper.decisions")
decision_log.setLevel(logging.INFO)

_CLIENT_HEADERS = ("Authorization", "User-Agent", "Accept-Version")
_READ_CHUNK = 64 * 1024
# A broker answer larger than this is not kept for answering retries (they get a 409).
_MAX_KEPT_ANSWER = 64 * 1024
_PLACEMENTS = (RouteKind.PLACE, RouteKind.COMPLEX)


@dataclass(frozen=True)
class Failure:
    """Why the order path could not reach an allow/reject verdict."""

    error: GatekeeperError
    verdict: str  # reject (the request is at fault) | error (we are)


def parse_request(kind: RouteKind, raw: bytes, max_bytes: int) -> Order | ComplexOrder | OrderPatch:
    """The typed request for a checked route (strict JSON; limits on size and depth)."""
    data = loads_strict(raw, max_bytes=max_bytes)
    if kind in (RouteKind.COMPLEX, RouteKind.COMPLEX_DRY_RUN):
        return parse_complex_order(data)
    if kind in (RouteKind.REPLACE, RouteKind.REPLACE_DRY_RUN):
        return parse_replace(data)
    return parse_order(data)


async def read_body(request: web.Request, max_bytes: int) -> bytes:
    """The body of a checked request, exactly as received (the proxy's server does not
    decompress). Refused before reading when it is not declared as plain UTF-8 JSON (415,
    see gatekeeper.core.media) or its declared length is above ``max_bytes`` (413); a chunked
    body is refused as soon as it grows past ``max_bytes``."""
    headers = request.headers
    check_json_media(headers.getall("Content-Type", []), headers.getall("Content-Encoding", []))
    declared = request.content_length
    if declared is not None and declared > max_bytes:
        raise BodyTooLarge(f"body of {declared} bytes exceeds the {max_bytes}-byte limit")
    body = bytearray()
    async for chunk in request.content.iter_chunked(_READ_CHUNK):
        body += chunk
        if len(body) > max_bytes:
            raise BodyTooLarge(f"body exceeds the {max_bytes}-byte limit")
    return bytes(body)


def with_strict_position_effect(raw: bytes) -> bytes:
    """The body with ``advanced-instructions.strict-position-effect-validation: true`` (set on
    every contained order of a complex order)."""
    data: dict[str, Any] = json.loads(raw, parse_float=Decimal)
    return dump(_strict(data)).encode()


def _strict(data: dict[str, Any]) -> dict[str, Any]:
    targets = [data]
    if "orders" in data or "trigger-order" in data:
        targets = [o for o in (data.get("trigger-order"), *data.get("orders", [])) if o]
    for order in targets:
        instructions = order.get("advanced-instructions")
        instructions = dict(instructions) if isinstance(instructions, dict) else {}
        instructions["strict-position-effect-validation"] = True
        order["advanced-instructions"] = instructions
    return data


def forwarded_body(raw: bytes, data: dict[str, Any] | None, *, strict: bool) -> bytes:
    """The bytes forwarded: ``raw`` itself unless the gate added an ``external-identifier``
    (``data``, see gatekeeper.order_identity) or the strict flag; numbers stay as written."""
    if data is None and not strict:
        return raw
    if data is None:
        data = json.loads(raw, parse_float=Decimal)
    return dump(_strict(data) if strict else data).encode()


async def handle_order(request: web.Request, route: Route, send: Send) -> web.StreamResponse:
    """Answer one checked order request (see the module docstring)."""
    app = request.app
    metrics = app[keys.METRICS]
    started = time.perf_counter()
    decision_id = uuid4()
    account = route.account_number or "-"
    max_bytes = app[keys.SETTINGS].risk.max_body_bytes
    try:
        # Every answer on these routes has a decision row, refusals of the request itself too.
        validate_target(request.raw_path, method=request.method)
        validate_headers(request.headers)
        if route.kind is RouteKind.UNSUPPORTED or route.account_number is None:
            return await _reject_unsupported(request, route, decision_id, started)
        raw = await read_body(request, max_bytes)
        orders = parse_request(route.kind, raw, max_bytes)
        identity = added = None
        if route.kind in _PLACEMENTS:
            data, identity = identify(
                raw, route.kind.value, decision_id, complex_order=route.kind is RouteKind.COMPLEX
            )
            added = None if identity.client_identifiers == identity.external_identifiers else data
        order_request = OrderRequest(
            account=account,
            route_kind=route.kind.value,
            orders=orders,
            dry_run=route.kind.is_dry_run,
            client_headers={h: request.headers[h] for h in _CLIENT_HEADERS if h in request.headers},
            replaces_order_id=route.order_id,
            identity=identity,
        )
        result = await app[keys.ENGINE].decide(order_request, decision_id, started)
    except DuplicateOrder as duplicate:
        return _answer_duplicate(request, route, duplicate, started)
    except (BadRequest, ReservedPath, BrokerAuthFailed, RequestTimeout) as error:
        # BadRequest: an unreadable order (OrderParseError: 400/413/415), an invalid target,
        # Connection or Transfer-Encoding; ReservedPath (404); the request is at fault, and so
        # it is when its body did not arrive in time (RequestTimeout, 408). BrokerAuthFailed:
        # the broker refused the bot's own credentials; its 401/403 is relayed, recorded as
        # broker_auth_failed, never forwarded.
        return await _fail(request, route, decision_id, started, Failure(error, "reject"))
    except (RiskPathUnavailable, AccountStateInvalid) as error:
        return await _fail(request, route, decision_id, started, Failure(error, "error"))
    except Exception as error:
        # Type and frames only: an exception's text may quote request data (the bot's token).
        frames = "".join(traceback.format_tb(error.__traceback__))
        log.error("order path failed (%s): %s\n%s", route.kind.value, type(error).__name__, frames)
        internal = GatekeeperError("internal_error: the gatekeeper failed to check the order")
        return await _fail(request, route, decision_id, started, Failure(internal, "error"))
    latency = time.perf_counter() - started
    metrics.order_path_duration.labels(route.kind.value).observe(latency)
    decision = result.decision
    _log_decision(
        account,
        route.kind.value,
        decision.verdict.value,
        list(decision.codes),
        decision.as_dict(),
        decision_id,
        latency,
    )
    _count(metrics, decision.verdict.value, [c.value for c in decision.codes])
    publish_decision(metrics, account, result)
    if not decision.allowed:
        return risk_rejection(decision, decision_id)
    if (reconciler := app.get(keys.RECONCILER)) is not None:
        reconciler.credential_seen(account, order_request.client_headers)
    body = forwarded_body(raw, added, strict=decision.strict_position_effect)
    try:
        return await _forward(request, route, result, body, send)
    except GatekeeperError as error:  # 502/504 after an allowed decision: it has its row
        return error_response(error, headers={DECISION_HEADER: str(decision_id)})


async def _forward(
    request: web.Request, route: Route, result: Result, body: bytes, send: Send
) -> web.StreamResponse:
    engine = request.app[keys.ENGINE]
    account = route.account_number or "-"
    outcome: db.Outcome = "unknown"
    answer: UpstreamAnswer | None = None
    lost = False
    try:
        answer = await send(request, body=body, route_kind=route.kind.value)
        outcome = "accepted" if 200 <= answer.status < 300 else "broker_rejected"
    except (UpstreamTimeout, UpstreamDisconnected):
        outcome = "unknown"  # maybe placed: counted, never retried; the reconciler finds out
        lost = True
        raise
    except UpstreamUnavailable:
        outcome = "not_sent"  # no connection was had (not even a pooled one): not counted
        raise
    finally:
        if not route.kind.is_dry_run:
            await engine.state.invalidate(account)
        await _record_outcome(request, result.decision_id, account, outcome, answer)
        if lost and (reconciler := request.app.get(keys.RECONCILER)):
            reconciler.wake.set()  # look the order up at the broker now
    response = answer.response()
    response.headers[DECISION_HEADER] = str(result.decision_id)
    return response


def _answer_duplicate(
    request: web.Request, route: Route, duplicate: DuplicateOrder, started: float
) -> web.Response:
    """A retry (its row is recorded): the first's broker answer when it was accepted and
    kept, else 409 ``duplicate_order`` naming the first decision."""
    first = duplicate.first
    account = route.account_number or "-"
    latency = time.perf_counter() - started
    detail = {"duplicate_of": str(first.decision_id), "first_outcome": first.outcome}
    metrics = request.app[keys.METRICS]
    metrics.order_path_duration.labels(route.kind.value).observe(latency)
    _count(metrics, "reject", ["duplicate_order"])
    _log_decision(
        account,
        route.kind.value,
        "reject",
        ["duplicate_order"],
        detail,
        duplicate.decision_id,
        latency,
    )
    headers = {
        DECISION_HEADER: str(duplicate.decision_id),
        DUPLICATE_HEADER: str(first.decision_id),
    }
    if first.outcome == "accepted" and first.answer_body is not None:
        return web.Response(
            status=first.http_status or 201,
            body=first.answer_body.encode(),
            content_type="application/json",
            headers=headers,
        )
    if first.outcome == "accepted":
        message = (
            f"Rejected by risk gatekeeper: duplicate_order: this order repeats decision"
            f" {first.decision_id}, already accepted by the broker"
            f" (order {first.broker_order_id}); it is not forwarded again"
        )
    else:
        message = f"Rejected by risk gatekeeper: {duplicate.message}"
    return web.json_response(
        error_envelope(
            "duplicate_order", message, [{"code": "duplicate_order", "message": message}]
        ),
        status=409,
        headers=headers,
    )


def _broker_order_id(answer: UpstreamAnswer) -> str | None:
    try:
        data = json.loads(answer.body)["data"]
        order = data.get("order") or data.get("complex-order") or data
        order_id = order.get("id")
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return None if order_id is None else str(order_id)


def _kept_answer(outcome: db.Outcome, answer: UpstreamAnswer | None) -> str | None:
    if outcome != "accepted" or answer is None or len(answer.body) > _MAX_KEPT_ANSWER:
        return None
    try:
        return answer.body.decode("utf-8")
    except UnicodeDecodeError:
        return None


async def _record_outcome(
    request: web.Request,
    decision_id: UUID,
    account: str,
    outcome: db.Outcome,
    answer: UpstreamAnswer | None,
) -> None:
    try:
        async with request.app[keys.PG_POOL].acquire() as conn:
            await db.insert_outcome(
                conn,
                decision_id,
                account,
                outcome,
                http_status=None if answer is None else answer.status,
                broker_order_id=None if answer is None else _broker_order_id(answer),
                answer_body=_kept_answer(outcome, answer),
            )
    except asyncpg.UniqueViolationError:
        # The reconciler resolved it first (this forward outlived its grace): its row stands.
        log.warning("order outcome %s for decision %s was already resolved", outcome, decision_id)
    except DB_DOWN as error:
        # The reservation stays unresolved: it keeps counting as a trade and in flight.
        log.error(
            "order outcome %s for decision %s not recorded: %s",
            outcome,
            decision_id,
            type(error).__name__,
        )


async def _reject_unsupported(
    request: web.Request, route: Route, decision_id: UUID, started: float
) -> web.Response:
    error = GatekeeperError(
        "unsupported_order_route: this request could create or change an order and the"
        " gatekeeper does not understand it, so it is not forwarded"
    )
    error_failure = Failure(error, "reject")
    return await _fail(
        request, route, decision_id, started, error_failure, "unsupported_order_route"
    )


async def _fail(
    request: web.Request,
    route: Route,
    decision_id: UUID,
    started: float,
    failure: Failure,
    code: str | None = None,
) -> web.Response:
    """Record (if Postgres answers), log and render a request the gate did not decide."""
    code = code or failure.error.code
    account = route.account_number or "-"
    latency = time.perf_counter() - started
    detail = {"verdict": failure.verdict, "code": code, "message": failure.error.message}
    try:
        async with request.app[keys.PG_POOL].acquire() as conn:
            now = await db.database_now(conn)
            await db.insert_decision(
                conn,
                db.DecisionRow(
                    decision_id=decision_id,
                    account_id=account,
                    route_kind=route.kind.value,
                    verdict="reject" if failure.verdict == "reject" else "error",
                    codes=[code],
                    notes=[],
                    message=failure.error.message,
                    detail=detail,
                    trading_day=trading_day(now),
                    trade_count=0,
                    reserved_orders=[],
                    replaces_order_id=route.order_id,
                    latency_ms=latency * 1000,
                ),
            )
    except DB_DOWN as error:
        if not isinstance(failure.error, DatabaseUnavailable):
            log.error("decision %s not recorded: %s", decision_id, type(error).__name__)
    if (alerts := request.app.get(keys.ALERTS)) is not None:
        alerts.note_failure(account, failure.error)  # risk path failing: an alert, no I/O
    metrics = request.app[keys.METRICS]
    metrics.order_path_duration.labels(route.kind.value).observe(latency)
    _count(metrics, failure.verdict, [code])
    _log_decision(account, route.kind.value, failure.verdict, [code], detail, decision_id, latency)
    return error_rejection(failure.error, code, decision_id)


def _count(metrics: Metrics, verdict: str, codes: list[str]) -> None:
    metrics.decisions.labels(verdict).inc()
    for code in codes or ["none"]:
        metrics.risk_decisions.labels(verdict, code).inc()


def _log_decision(
    account: str,
    route_kind: str,
    verdict: str,
    codes: list[str],
    detail: dict[str, Any],
    decision_id: UUID,
    latency: float,
) -> None:
    entry = {
        "decision_id": str(decision_id),
        "account": account,
        "route_kind": route_kind,
        "verdict": verdict,
        "codes": codes,
        "figures": detail.get("figures", {}),
        "notes": [n.get("code") for n in detail.get("notes", [])],
        "latency_ms": round(latency * 1000, 3),
    }
    decision_log.info("RISK_DECISION %s", json.dumps(entry, sort_keys=True))
