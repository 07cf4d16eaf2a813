"""The record of the working orders a stop cancelled: the active stops' events that call for
cancels on an account, the runs that cancelled (or tried to cancel) its working orders, and
each order's cancel. The only module with the SQL of ``stop_cancel_runs`` and
``stop_order_cancels`` (``sql/0026``); the stops themselves are
:mod:`gatekeeper.adapters.stops`, the cancelling :mod:`gatekeeper.stop_actions`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from gatekeeper.adapters.pg import Conn

# A run whose cancels failed is tried again with the next credential, this many runs at most.
MAX_CANCEL_RUNS = 3

EventKind = Literal["account", "global"]
Credential = Literal["request", "gatekeeper_oauth", "bot"]
Outcome = Literal["cancelled", "failed", "not_attempted", "kept"]


@dataclass(frozen=True)
class StopEvent:
    """An active stop's triggering event that may call for cancels on one account."""

    kind: EventKind
    event_id: int
    cancel: bool  # the protection's cancel_working_orders_on_stop (global: any/none says so)


_ACTIVE_EVENTS_SQL = """
    WITH per_account AS (
        SELECT DISTINCT ON (p.id) e.id AS event_id, p.cancel_working_orders_on_stop AS cancel
        FROM portfolio_protections p
        JOIN emergency_events e ON e.protection_id = p.id AND e.event = 'triggered'
        WHERE p.account_id = $1 AND p.emergency_stop_triggered_at IS NOT NULL
        ORDER BY p.id, e.id DESC
    ),
    global_event AS (
        SELECT (SELECT max(id) FROM global_emergency_events WHERE event = 'triggered')
            AS event_id
        FROM global_emergency_stop WHERE triggered_at IS NOT NULL
    )
    SELECT 'account' AS kind, event_id, cancel FROM per_account
    UNION ALL
    SELECT 'global', event_id,
           NOT EXISTS (SELECT 1 FROM portfolio_protections WHERE account_id = $1)
           OR EXISTS (SELECT 1 FROM portfolio_protections
                      WHERE account_id = $1 AND cancel_working_orders_on_stop)
    FROM global_event WHERE event_id IS NOT NULL
    ORDER BY 1, 2
"""


async def active_stop_events(conn: Conn, account: str) -> list[StopEvent]:
    """The triggering events of the stops now active on ``account`` (its protections' and
    the global one), whether or not they call for cancels."""
    rows = await conn.fetch(_ACTIVE_EVENTS_SQL, account)
    return [StopEvent(row["kind"], row["event_id"], row["cancel"]) for row in rows]


@dataclass(frozen=True)
class OrderCancel:
    order_id: str | None
    outcome: Outcome
    http_status: int | None
    detail: str


@dataclass(frozen=True)
class CancelRun:
    """What a run did for one stop event on one account."""

    id: int
    kind: EventKind
    event_id: int
    credential: Credential
    complete: bool
    covered_by: int | None
    ran_at: datetime
    orders: tuple[OrderCancel, ...]


def _event_column(kind: EventKind) -> str:
    return "emergency_event_id" if kind == "account" else "global_event_id"


async def cancel_runs(conn: Conn, account: str, events: Sequence[StopEvent]) -> list[CancelRun]:
    """The runs recorded for ``events`` on ``account``, oldest first, with their orders
    (a covering run's orders are shown on the runs it covered too)."""
    if not events:
        return []
    account_ids = [e.event_id for e in events if e.kind == "account"]
    global_ids = [e.event_id for e in events if e.kind == "global"]
    rows = await conn.fetch(
        "SELECT id, emergency_event_id, global_event_id, credential, complete, covered_by,"
        " ran_at FROM stop_cancel_runs WHERE account_id = $1"
        " AND (emergency_event_id = ANY($2::bigint[]) OR global_event_id = ANY($3::bigint[]))"
        " ORDER BY id",
        account,
        account_ids,
        global_ids,
    )
    sources = [row["covered_by"] or row["id"] for row in rows]
    orders = await conn.fetch(
        "SELECT run_id, order_id, outcome, http_status, detail FROM stop_order_cancels"
        " WHERE run_id = ANY($1::bigint[]) ORDER BY id",
        sources,
    )
    by_run: dict[int, list[OrderCancel]] = {}
    for item in orders:
        by_run.setdefault(item["run_id"], []).append(
            OrderCancel(item["order_id"], item["outcome"], item["http_status"], item["detail"])
        )
    return [
        CancelRun(
            id=row["id"],
            kind="account" if row["emergency_event_id"] is not None else "global",
            event_id=row["emergency_event_id"] or row["global_event_id"],
            credential=row["credential"],
            complete=row["complete"],
            covered_by=row["covered_by"],
            ran_at=row["ran_at"],
            orders=tuple(by_run.get(source, ())),
        )
        for row, source in zip(rows, sources, strict=True)
    ]


def pending(events: Sequence[StopEvent], runs: Sequence[CancelRun]) -> list[StopEvent]:
    """The events that still call for a run: cancels wanted, no complete run, and fewer than
    MAX_CANCEL_RUNS runs so far."""
    waiting = []
    for event in events:
        mine = [r for r in runs if (r.kind, r.event_id) == (event.kind, event.event_id)]
        if event.cancel and not any(r.complete for r in mine) and len(mine) < MAX_CANCEL_RUNS:
            waiting.append(event)
    return waiting


async def try_lock_cancels(conn: Conn, account: str) -> bool:
    """Take the account's cancel lock until the transaction ends, if no one holds it: one
    replica at a time lists and cancels an account's working orders."""
    taken: bool = await conn.fetchval(
        "SELECT pg_try_advisory_xact_lock(hashtextextended('gatekeeper.stop_cancels:' || $1, 0))",
        account,
    )
    return taken


async def record_run(
    conn: Conn,
    account: str,
    event: StopEvent,
    credential: Credential,
    *,
    complete: bool,
    covered_by: int | None = None,
) -> int:
    run_id: int = await conn.fetchval(
        f"INSERT INTO stop_cancel_runs ({_event_column(event.kind)}, account_id, credential,"  # noqa: S608
        " covered_by, complete) VALUES ($1, $2, $3, $4, $5) RETURNING id",
        event.event_id,
        account,
        credential,
        covered_by,
        complete,
    )
    return run_id


async def record_cancel(
    conn: Conn, run_id: int, account: str, event: StopEvent, cancel: OrderCancel
) -> None:
    await conn.execute(
        f"INSERT INTO stop_order_cancels (run_id, {_event_column(event.kind)}, account_id,"  # noqa: S608
        " order_id, outcome, http_status, detail) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        run_id,
        event.event_id,
        account,
        cancel.order_id,
        cancel.outcome,
        cancel.http_status,
        cancel.detail,
    )
