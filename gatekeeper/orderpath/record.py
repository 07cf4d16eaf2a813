"""Stage 3, recording: what the audit trail keeps of each request — the decision row (the
reservation, when allowed), the row of a request the gate refused without a rule verdict,
and the broker's outcome of a forwarded order."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from datetime import date
from uuid import UUID

import asyncpg

from gatekeeper.adapters import decisions as db
from gatekeeper.adapters.broker import UpstreamAnswer
from gatekeeper.adapters.held_decision import HeldLocks
from gatekeeper.adapters.pg import DB_DOWN
from gatekeeper.adapters.refusal_rows import RefusalRow, RefusalRows
from gatekeeper.core import ComplexOrder, Decision, Order
from gatekeeper.core.holdings import contained_orders
from gatekeeper.order_identity import OrderIdentity
from gatekeeper.orderpath.decided import OrderRequest

log = logging.getLogger(__name__)

# A broker answer larger than this is not kept for answering retries (they get a 409).
_MAX_KEPT_ANSWER = 64 * 1024


def identity_detail(identity: OrderIdentity | None) -> dict[str, object]:
    """A placement's external-identifiers and fingerprint, as its decision row keeps them."""
    if identity is None:
        return {}
    return {
        "external_identifiers": list(identity.external_identifiers),
        "fingerprint": identity.fingerprint,
    }


def decision_row(
    *,
    account: str,
    route_kind: str,
    replaces_order_id: str | None,
    identity: OrderIdentity | None,
    decision: Decision,
    decision_id: UUID,
    day: date,
    started: float,
    orders: Order | ComplexOrder,
    summary: Mapping[str, object] | None = None,
) -> db.DecisionRow:
    """The audit row of a decision (the reservation, when allowed and not a dry-run), with
    the order's ``summary`` (gatekeeper.core.summary) for the people reading it."""
    reserve = decision.allowed and decision.trade_count > 0
    return db.DecisionRow(
        decision_id=decision_id,
        account_id=account,
        route_kind=route_kind,
        verdict=decision.verdict.value,
        codes=[code.value for code in decision.codes],
        notes=[code.value for code in decision.note_codes],
        message=decision.message,
        detail={
            **decision.as_dict(),
            **identity_detail(identity),
            **({"summary": dict(summary)} if summary else {}),
        },
        trading_day=day,
        trade_count=decision.trade_count if decision.allowed else 0,
        reserved_orders=[
            order.model_dump(mode="json", by_alias=True, exclude_none=True)
            for order in contained_orders(orders)
        ]
        if reserve
        else [],
        replaces_order_id=replaces_order_id,
        latency_ms=(time.perf_counter() - started) * 1000,
    )


async def record_refusal(
    refusals: RefusalRows,
    *,
    decision_id: UUID,
    account: str,
    route_kind: str,
    replaces_order_id: str | None,
    verdict: str,
    code: str,
    message: str,
    detail: Mapping[str, object],
    latency: float,
    wait_at_most: float | None = None,
) -> bool:
    """Append the row of a request refused without a rule verdict (``verdict`` reject: the
    request is at fault; error: we are), on the refusals' own connection
    (gatekeeper.adapters.refusal_rows). False when it was not committed (within
    ``wait_at_most`` seconds, when given: the database was just found not answering)."""
    row = RefusalRow(
        decision_id=decision_id,
        account_id=account,
        route_kind=route_kind,
        verdict="reject" if verdict == "reject" else "error",
        codes=[code],
        message=message,
        detail=dict(detail),
        replaces_order_id=replaces_order_id,
        latency_ms=latency * 1000,
    )
    return await refusals.append(row, wait_at_most=wait_at_most)


def duplicate_row(
    request: OrderRequest, read: db.LockedInputs, decision_id: UUID, started: float
) -> db.DecisionRow:
    """A retry's own decision row (reject ``duplicate_order``, not counted)."""
    first = read.duplicate
    assert first is not None  # noqa: S101 - called for a duplicate
    message = (
        f"duplicate_order: this order repeats decision {first.decision_id}"
        f" ({first.outcome or 'in flight'}); it is not forwarded again"
    )
    detail = {
        "verdict": "reject",
        "code": "duplicate_order",
        "message": message,
        "duplicate_of": str(first.decision_id),
        "first_outcome": first.outcome or "pending",
        "broker_order_id": first.broker_order_id,
        **identity_detail(request.identity),
        **({"summary": dict(request.summary)} if request.summary else {}),
    }
    return db.DecisionRow(
        decision_id=decision_id,
        account_id=request.account,
        route_kind=request.route_kind,
        verdict="reject",
        codes=["duplicate_order"],
        notes=["duplicate_of"],
        message=message,
        detail=detail,
        trading_day=read.trading_day,
        trade_count=0,
        reserved_orders=[],
        replaces_order_id=request.replaces_order_id,
        latency_ms=(time.perf_counter() - started) * 1000,
    )


def _broker_order_id(answer: UpstreamAnswer) -> str | None:
    data = answer.data
    if data is None:
        return None
    try:
        order = data.get("order") or data.get("complex-order") or data
        order_id = order.get("id")
    except AttributeError:
        return None
    return None if order_id is None else str(order_id)


def _kept_answer(outcome: db.Outcome, answer: UpstreamAnswer | None) -> str | None:
    if outcome != "accepted" or answer is None or len(answer.body) > _MAX_KEPT_ANSWER:
        return None
    try:
        return answer.body.decode("utf-8")
    except UnicodeDecodeError:
        return None


async def record_outcome(
    pool: asyncpg.Pool,
    decision_id: UUID,
    account: str,
    outcome: db.Outcome,
    answer: UpstreamAnswer | None,
    held: HeldLocks | None = None,
) -> None:
    """Append the broker's outcome of a forwarded order; never raises for a database outage
    (the reservation then stays unresolved: it keeps counting, and the reconciler finds out).
    With the decision's ``held`` locks still held, on their connection, letting them go in
    the same round trip (gatekeeper.adapters.held_decision)."""
    http_status = None if answer is None else answer.status
    broker_order_id = None if answer is None else _broker_order_id(answer)
    answer_body = _kept_answer(outcome, answer)
    try:
        if held is not None and held.held:
            await held.outcome_then_release(
                decision_id, account, outcome, http_status, broker_order_id, answer_body
            )
            return
        async with pool.acquire() as conn:
            await db.insert_outcome(
                conn,
                decision_id,
                account,
                outcome,
                http_status=http_status,
                broker_order_id=broker_order_id,
                answer_body=answer_body,
            )
    except asyncpg.UniqueViolationError:
        # The reconciler resolved it first (this forward outlived its grace): its row stands.
        log.warning("order outcome %s for decision %s was already resolved", outcome, decision_id)
    except DB_DOWN as error:
        log.error(
            "order outcome %s for decision %s not recorded: %s",
            outcome,
            decision_id,
            type(error).__name__,
        )
