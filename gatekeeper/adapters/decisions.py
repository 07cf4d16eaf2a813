"""The order path's data access: the account lock, start-of-day NLV, today's reservations,
decision rows and order outcomes. The only module with their SQL (``sql/0020``, ``0025``).

The trading day is the America/New_York calendar date of the database's ``now()`` (one clock
for every replica); :func:`decision_inputs` takes an optional ``clock`` instead, for tests.

An allowed, non-dry-run decision is its own reservation: it counts toward today's trades and
as in flight until its outcome shows the broker refused it (or never got it).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

# The order path's account lock, also taken by every protection change (account_lock.py).
from gatekeeper.adapters.account_lock import lock_account as lock_account
from gatekeeper.adapters.pg import Conn
from gatekeeper.adapters.protections import Protection
from gatekeeper.core import trading_day

Outcome = Literal["accepted", "broker_rejected", "unknown", "not_sent", "not_placed"]

# A decision's outcome is its newest order_outcomes row (an `unknown` may be resolved later
# by the reconciler: sql/0029).
LATEST_OUTCOME = (
    "LEFT JOIN LATERAL (SELECT * FROM order_outcomes lo WHERE lo.decision_id = d.decision_id"
    " ORDER BY lo.id DESC LIMIT 1) AS o ON true"
)

_PROTECTION_COLUMNS = ", ".join(Protection.__dataclass_fields__)

# A reservation with no outcome after this long belongs to a process that died mid-order: it
# still counts as a trade, but its exposure is left to the account state.
PENDING_HORIZON = timedelta(minutes=5)


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


@dataclass(frozen=True)
class Reservations:
    """Today's trade count and the orders still in flight for one account."""

    trades_today: int
    in_flight: list[dict[str, Any]]


async def database_now(conn: Conn) -> datetime:
    """The one clock: the database's."""
    now: datetime = await conn.fetchval("SELECT now()")
    return now


@dataclass(frozen=True)
class DecisionInputs:
    """What the locked decision reads from Postgres, in one round trip."""

    now: datetime
    trading_day: date
    protections: list[Protection]
    start_of_day_nlv: Decimal
    reservations: Reservations
    # 'broker_bod' or 'first_sight' (sql/0025); the broker's row wins when both exist.
    start_of_day_source: str | None = None
    # The day's net deposits not contained in the start-of-day figure.
    net_deposits: Decimal = Decimal(0)
    # The global emergency stop's mode while it is active, else None (sql/0026).
    global_stop_mode: str | None = None


class TradingDayChanged(Exception):
    """The database's trading day is not the one the caller gathered its inputs for (they
    straddle New York midnight): nothing was recorded; gather them again for ``actual``."""

    def __init__(self, expected: date, actual: date) -> None:
        super().__init__(f"the trading day is {actual}, not {expected}")
        self.expected = expected
        self.actual = actual


def _decision_inputs_sql(*, hold: bool) -> str:
    # One statement, so one snapshot: it must run after the account lock was taken (in an
    # earlier statement of the transaction), or it could miss a decision committed meanwhile.
    # $1 account, $2 NLV now, $3 the day the caller gathered its inputs for (or NULL), $4 the
    # day's net deposits known now, $5 a clock instead of now() (tests; NULL in production).
    # A first sight is recorded only when the broker's row is absent and the day is $3's.
    lock = " FOR SHARE" if hold else ""
    return f"""
        WITH clock AS (
            SELECT t AS now, (t AT TIME ZONE 'America/New_York')::date AS day
            FROM (SELECT coalesce($5::timestamptz, now()) AS t) AS c
        ),
        recorded AS (
            SELECT net_liquidating_value, source, net_deposits_at_start FROM account_day_start
            WHERE account_id = $1 AND trading_day = (SELECT day FROM clock)
        ),
        inserted AS (
            INSERT INTO account_day_start
                (account_id, trading_day, net_liquidating_value, source, net_deposits_at_start)
            SELECT $1, day, $2, 'first_sight', $4 FROM clock
            WHERE day = coalesce($3::date, day)
              AND NOT EXISTS (SELECT 1 FROM recorded WHERE source = 'broker_bod')
            ON CONFLICT (account_id, trading_day, source) DO NOTHING
            RETURNING net_liquidating_value, source, net_deposits_at_start
        ),
        start_of_day AS (
            SELECT * FROM (SELECT * FROM inserted UNION ALL SELECT * FROM recorded) AS s
            ORDER BY (source = 'broker_bod') DESC LIMIT 1
        ),
        global_stop AS (
            SELECT coalesce(active_mode, '') AS mode FROM global_emergency_stop{lock}
        ),
        protections AS (
            SELECT {_PROTECTION_COLUMNS} FROM portfolio_protections
            WHERE account_id = $1 ORDER BY id{lock}
        ),
        reserved AS (
            SELECT d.trade_count, d.reserved_orders, d.decided_at, o.outcome, o.recorded_at,
                   o.broker_order_id
            FROM risk_decisions d
            {LATEST_OUTCOME}
            WHERE d.account_id = $1 AND d.trading_day = (SELECT day FROM clock)
              AND d.verdict = 'allow' AND d.trade_count > 0
              AND (o.outcome IS NULL OR o.outcome IN ('accepted', 'unknown'))
        )
        SELECT (SELECT now FROM clock) AS now, (SELECT day FROM clock) AS day,
               (SELECT net_liquidating_value FROM start_of_day) AS start_of_day_nlv,
               (SELECT source FROM start_of_day) AS start_of_day_source,
               (SELECT net_deposits_at_start FROM start_of_day) AS start_of_day_deposits,
               (SELECT coalesce(array_agg(p ORDER BY p.id), '{{}}') FROM protections p)
                   AS protections,
               (SELECT mode FROM global_stop) AS global_stop_mode,
               (SELECT coalesce(array_agg(r), '{{}}') FROM reserved r) AS reserved
        """  # noqa: S608 - constants only


_DECISION_INPUTS_SQL = {hold: _decision_inputs_sql(hold=hold) for hold in (False, True)}
_PROTECTION_FIELDS = tuple(Protection.__dataclass_fields__)


async def decision_inputs(
    conn: Conn,
    account_id: str,
    nlv: Decimal,
    *,
    hold: bool,
    seen_order_ids: Collection[str],
    day: date | None = None,
    net_deposits: Decimal = Decimal(0),
    clock: datetime | None = None,
) -> DecisionInputs:
    """In one round trip: the database's ``now()`` (the transaction's start: one clock for
    the whole decision; ``clock`` replaces it in tests) and its trading day; every protection
    of the account (with ``hold``, share-locked until commit: an emergency stop, which takes
    them FOR UPDATE, then commits after this decision, never during it); the start-of-day NLV
    of the day: the broker's when recorded, else the first sight (``nlv``, recorded now with
    ``net_deposits`` if this is the first decision of the day); and the day's reservations
    (see :func:`reservations_from_rows`).

    ``day``: the trading day the caller fetched the broker's start of day and ``net_deposits``
    for; if the database's differs, TradingDayChanged (nothing recorded)."""
    row = await conn.fetchrow(_DECISION_INPUTS_SQL[hold], account_id, nlv, day, net_deposits, clock)
    assert row is not None  # noqa: S101 - the statement always returns one row
    now, database_day = row["now"], row["day"]
    if database_day != trading_day(now):
        # Postgres and Python disagree on America/New_York (time zone data): count nothing.
        raise RuntimeError(f"the database's trading day {database_day} is not that of {now}")
    if day is not None and database_day != day:
        raise TradingDayChanged(day, database_day)
    protections = [
        Protection(**dict(zip(_PROTECTION_FIELDS, item, strict=True)))
        for item in row["protections"]
    ]
    return DecisionInputs(
        now=now,
        trading_day=database_day,
        protections=protections,
        start_of_day_nlv=row["start_of_day_nlv"],
        reservations=reservations_from_rows(
            row["reserved"], now=now, seen_order_ids=seen_order_ids
        ),
        start_of_day_source=row["start_of_day_source"],
        global_stop_mode=_global_stop_mode(row["global_stop_mode"]),
        net_deposits=net_deposits - (row["start_of_day_deposits"] or Decimal(0)),
    )


def _global_stop_mode(mode: str | None) -> str | None:
    if mode is None:  # sql/0026 inserts the row and a trigger keeps it: fail closed
        raise RuntimeError("global_emergency_stop has no row: the schema is damaged")
    return mode or None


def reservations_from_rows(
    rows: Sequence[Sequence[Any]], *, now: datetime, seen_order_ids: Collection[str]
) -> Reservations:
    """Trades counted today (reserved, accepted or unknown) and the orders in flight: those
    the account state cannot show yet. An accepted order is in flight until its broker order
    id appears among the state's orders (``/orders/live`` lists today's orders in any status,
    so a filled or cancelled one is accounted for there); reserved-without-outcome and
    unknown (timed out) ones count for PENDING_HORIZON. ``rows`` are (trade_count,
    reserved_orders, decided_at, outcome, recorded_at, broker_order_id)."""
    trades = 0
    in_flight: list[dict[str, Any]] = []
    for trade_count, reserved_orders, decided_at, outcome, recorded_at, order_id in rows:
        trades += trade_count
        since = decided_at if outcome is None else recorded_at
        recent = since > now - PENDING_HORIZON
        # no broker id (pending, unknown, or an answer without one): recent ones count
        if (order_id not in seen_order_ids) if order_id is not None else recent:
            in_flight.extend(json.loads(reserved_orders))
    return Reservations(trades, in_flight)


async def insert_decision(conn: Conn, row: DecisionRow) -> None:
    """Append the decision row (the reservation, when allowed)."""
    await conn.execute(
        """
        INSERT INTO risk_decisions
            (decision_id, account_id, route_kind, verdict, codes, notes, message, detail,
             trading_day, trade_count, reserved_orders, replaces_order_id, latency_ms)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10, $11::jsonb, $12, $13)
        """,
        row.decision_id,
        row.account_id,
        row.route_kind,
        row.verdict,
        list(row.codes),
        list(row.notes),
        row.message,
        json.dumps(row.detail),
        row.trading_day,
        row.trade_count,
        json.dumps(list(row.reserved_orders)),
        row.replaces_order_id,
        round(row.latency_ms, 3),
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


_TRADES_TODAY_SQL = f"""
    SELECT coalesce(sum(d.trade_count), 0)::int
    FROM risk_decisions d
    {LATEST_OUTCOME}
    WHERE d.account_id = $1 AND d.trading_day = $2 AND d.verdict = 'allow'
      AND (o.outcome IS NULL OR o.outcome IN ('accepted', 'unknown'))
    """  # noqa: S608 - constants only


async def trades_today(conn: Conn, account_id: str, day: date) -> int:
    """Orders counted toward ``max_daily_trades`` on ``day`` (as :func:`decision_inputs`)."""
    count: int = await conn.fetchval(
        _TRADES_TODAY_SQL,
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
