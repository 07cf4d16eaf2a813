"""Order-path rejections in TastyTrade's error envelope, which every client surfaces.

A rule violation is HTTP 422 with top-level ``code: risk_check_failed`` and one nested item
per violation, carrying the same text (tastyware shows the nested lines, tastytrade-sdk the
top-level one). A request the gate could not decide gets its own status and code (e.g. 503
``database_unavailable``). Both carry the decision id in a header.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from aiohttp import web

from gatekeeper.core import Decision
from gatekeeper.errors import DeadlineExceeded, DuplicateOrder, GatekeeperError, error_envelope

DECISION_HEADER = "X-Gatekeeper-Decision-Id"
# On the answer to a retried submission: the decision of the first.
DUPLICATE_HEADER = "X-Gatekeeper-Duplicate-Of"
RISK_CHECK_FAILED = "risk_check_failed"


@dataclass(frozen=True)
class Failure:
    """Why the order path could not reach an allow/reject verdict."""

    error: GatekeeperError
    verdict: str  # reject (the request is at fault) | error (we are)


def risk_rejection(decision: Decision, decision_id: UUID) -> web.Response:
    """422: every violation, each with its code and message."""
    message = f"Rejected by risk gatekeeper: {decision.message}"
    items = [
        {"code": v.code.value, "message": f"Rejected by risk gatekeeper: {v.message}"}
        for v in decision.violations
    ]
    return web.json_response(
        error_envelope(RISK_CHECK_FAILED, message, items),
        status=422,
        reason="Unprocessable Entity",
        headers={DECISION_HEADER: str(decision_id)},
    )


def error_rejection(error: GatekeeperError, decision_id: UUID) -> web.Response:
    """A request the gate refused without a rule verdict (bad body, backend down)."""
    code = error.code
    message = f"Rejected by risk gatekeeper: {error.message}"
    return web.json_response(
        error_envelope(code, message, [{"code": code, "message": message}]),
        status=error.status,
        headers={DECISION_HEADER: str(decision_id)},
    )


def duplicate_answer(duplicate: DuplicateOrder) -> web.Response:
    """A retry (its row is recorded): the first's broker answer when it was accepted and
    kept, else 409 ``duplicate_order`` naming the first decision."""
    first = duplicate.first
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


class UnsupportedOrderRoute(GatekeeperError):
    """An order route the gate cannot check: refused, with a decision row."""

    status = 422
    code = "unsupported_order_route"


def unsupported_route() -> UnsupportedOrderRoute:
    return UnsupportedOrderRoute(
        "unsupported_order_route: this request could create or change an order and the"
        " gatekeeper does not understand it, so it is not forwarded"
    )


def deadline_passed_after_decision() -> DeadlineExceeded:
    return DeadlineExceeded(
        "deadline_exceeded: the order was allowed but its deadline passed before it could"
        " be forwarded (risk.order_deadline_seconds); it was not forwarded"
    )
