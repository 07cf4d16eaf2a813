"""The order path's rows: decision rows and order outcomes as they are appended, the
start-of-day NLV rows, and today's trades and latest decision (the status job's). With
:mod:`gatekeeper.adapters.decision_inputs` (the locked read, whose names are re-exported
here), the only modules with their SQL (``sql/0020``, ``0025``, ``0030``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

import orjson

# The order path's account lock, also taken by every protection change (account_lock.py).
from gatekeeper.adapters.account_lock import lock_account
from gatekeeper.adapters.decision_inputs import (
    PENDING_HORIZON,
    SEEN_SETTLE_AFTER,
    STATE_CLOCK_MARGIN,
    DecisionInputs,
    FirstSubmission,
    LockedInputs,
    Reservations,
    TradingDayChanged,
    database_now,
    decision_inputs,
    decision_inputs_locked,
    in_flight_from_row,
    inputs_from_row,
    seen_text,
    state_age,
)
from gatekeeper.adapters.pg import Conn

__all__ = [
    "LATEST_OUTCOME",
    "PENDING_HORIZON",
    "SEEN_SETTLE_AFTER",
    "STATE_CLOCK_MARGIN",
    "DecisionInputs",
    "DecisionRow",
    "FirstSubmission",
    "LockedInputs",
    "Outcome",
    "Reservations",
    "TradingDayChanged",
    "broker_start_of_day",
    "database_now",
    "decision_inputs",
    "decision_inputs_locked",
    "in_flight_from_row",
    "inputs_from_row",
    "insert_decision",
    "insert_outcome",
    "latest_decision",
    "lock_account",
    "record_broker_start_of_day",
    "recorded_start_of_day",
    "seen_text",
    "state_age",
    "trades_today",
]

Outcome = Literal["accepted", "broker_rejected", "unknown", "not_sent", "not_placed"]

# A decision's outcome is its newest order_outcomes row (an `unknown` may be resolved later
# by the reconciler: sql/0029).
LATEST_OUTCOME = (
    "LEFT JOIN LATERAL (SELECT * FROM order_outcomes lo WHERE lo.decision_id = d.decision_id"
    " ORDER BY lo.id DESC LIMIT 1) AS o ON true"
)


@dataclass(frozen=True)
class DecisionRow:
    """What one decision row records (no tokens, no request headers)."""

    decision_id: UUID
    account_id: str
    route_kind: str
    verdict: Literal["allow", "reject", "error"]
    codes: Sequence[str]
    notes: Sequence[str]
    message: str
    detail: dict[str, Any]
    trading_day: date
    trade_count: int
    reserved_orders: Sequence[dict[str, Any]]
    replaces_order_id: str | None
    latency_ms: float

    def arguments(self) -> tuple[Any, ...]:
        """The row's 13 columns as statement arguments, in the table's order (decision_id ..
        latency_ms; detail and reserved_orders as JSON text)."""
        return (
            self.decision_id,
            self.account_id,
            self.route_kind,
            self.verdict,
            list(self.codes),
            list(self.notes),
            self.message,
            orjson.dumps(self.detail).decode(),
            self.trading_day,
            self.trade_count,
            orjson.dumps(list(self.reserved_orders)).decode(),
            self.replaces_order_id,
            round(self.latency_ms, 3),
        )


async def insert_decision(conn: Conn, row: DecisionRow) -> None:
    """Append the decision row (the reservation, when allowed)."""
    await conn.execute(
        """
        INSERT INTO risk_decisions
            (decision_id, account_id, route_kind, verdict, codes, notes, message, detail,
             trading_day, trade_count, reserved_orders, replaces_order_id, latency_ms)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10, $11::jsonb, $12, $13)
        """,
        *row.arguments(),
    )


async def insert_outcome(
    conn: Conn,
    decision_id: UUID,
    account_id: str,
    outcome: Outcome,
    *,
    http_status: int | None,
    broker_order_id: str | None,
    answer_body: str | None = None,
    resolution: str | None = None,
) -> None:
    """Append what the broker answered for a forwarded order (or, with ``resolution``, what
    the reconciler found out about an unresolved one)."""
    await conn.execute(
        """
        INSERT INTO order_outcomes
            (decision_id, account_id, outcome, http_status, broker_order_id, answer_body,
             resolution)
        VALUES ($1, $2, $3, $4, $5, $6, $7)
        """,
        decision_id,
        account_id,
        outcome,
        http_status,
        broker_order_id,
        answer_body,
        resolution,
    )


async def recorded_start_of_day(conn: Conn, account_id: str, day: date) -> Decimal | None:
    """The start-of-day NLV recorded for ``day``, if any (the broker's over a first sight)."""
    value: Decimal | None = await conn.fetchval(
        "SELECT net_liquidating_value FROM account_day_start"
        " WHERE account_id = $1 AND trading_day = $2"
        " ORDER BY (source = 'broker_bod') DESC LIMIT 1",
        account_id,
        day,
    )
    return value


async def broker_start_of_day(conn: Conn, account_id: str, day: date) -> Decimal | None:
    """The broker's beginning-of-day NLV recorded for ``day``, if any."""
    value: Decimal | None = await conn.fetchval(
        "SELECT net_liquidating_value FROM account_day_start"
        " WHERE account_id = $1 AND trading_day = $2 AND source = 'broker_bod'",
        account_id,
        day,
    )
    return value


async def record_broker_start_of_day(
    conn: Conn, account_id: str, day: date, nlv: Decimal
) -> Decimal:
    """Record the broker's beginning-of-day NLV for ``day`` (once: a row already there stays,
    the table is append-only); returns the recorded figure."""
    value: Decimal = await conn.fetchval(
        """
        WITH inserted AS (
            INSERT INTO account_day_start
                (account_id, trading_day, net_liquidating_value, source, net_deposits_at_start)
            VALUES ($1, $2, $3, 'broker_bod', 0)
            ON CONFLICT (account_id, trading_day, source) DO NOTHING
            RETURNING net_liquidating_value
        )
        SELECT net_liquidating_value FROM inserted
        UNION ALL
        SELECT net_liquidating_value FROM account_day_start
        WHERE account_id = $1 AND trading_day = $2 AND source = 'broker_bod'
        LIMIT 1
        """,
        account_id,
        day,
        nlv,
    )
    return value


async def trades_today(conn: Conn, account_id: str, day: date) -> int:
    """Orders counted toward ``max_daily_trades`` on ``day`` (as :func:`decision_inputs`)."""
    count: int = await conn.fetchval(
        "SELECT coalesce((SELECT trades FROM account_day_trades"
        " WHERE account_id = $1 AND trading_day = $2), 0)",
        account_id,
        day,
    )
    return count


async def latest_decision(conn: Conn, account_id: str, day: date) -> dict[str, Any] | None:
    """The last decision recorded for the account on ``day``, for the status route."""
    row = await conn.fetchrow(
        """
        SELECT decision_id, verdict, codes, detail, decided_at FROM risk_decisions
        WHERE account_id = $1 AND trading_day = $2 AND detail ? 'figures'
        ORDER BY id DESC LIMIT 1
        """,
        account_id,
        day,
    )
    if row is None:
        return None
    return {
        "decision_id": str(row["decision_id"]),
        "verdict": row["verdict"],
        "codes": list(row["codes"]),
        "detail": json.loads(row["detail"]),
        "decided_at": row["decided_at"],
    }
