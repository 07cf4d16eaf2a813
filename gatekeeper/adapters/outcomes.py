"""Unresolved orders and their first answers: the duplicate check of the order path and the
reconciler's reads and writes (``sql/0029``).

A counted (allowed, non-dry-run) decision is *unresolved* while its newest outcome is missing
or ``unknown``, and *resolved* once it is ``accepted``, ``broker_rejected``, ``not_sent`` or
``not_placed``. The unresolved ones are the rows of ``orders_in_flight`` (``sql/0030``) without an
outcome or with ``unknown``: the reconciler and the status route read them there, not by
scanning the decisions.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from uuid import UUID

from gatekeeper.adapters.decisions import FirstSubmission as FirstSubmission
from gatekeeper.adapters.pg import Conn


async def find_duplicate(
    conn: Conn,
    account_id: str,
    client_identifiers: Sequence[str],
    fingerprint: str,
    window_seconds: float,
) -> FirstSubmission | None:
    """The first counted decision of the account (today or yesterday, New York) that this
    submission repeats: one carrying any of ``client_identifiers``, or (``window_seconds`` >
    0) one with the same fingerprint decided within the window; only while it is unresolved
    or accepted. Run under the account lock, in the transaction that records the decision.
    Without identifiers and with the window off there is nothing to look for (no query).
    (``sql/0030``'s first_submission; gatekeeper.adapters.decisions.decision_inputs_locked
    runs the same lookup in its round trip.)"""
    if not client_identifiers and window_seconds <= 0:
        return None
    row = await conn.fetchrow(
        "SELECT * FROM first_submission($1, $2, $3, $4)",
        account_id,
        list(client_identifiers),
        fingerprint,
        window_seconds,
    )
    if row is None:
        return None
    return FirstSubmission(
        decision_id=row["decision_id"],
        outcome=row["outcome"],
        http_status=row["http_status"],
        broker_order_id=row["broker_order_id"],
        answer_body=row["answer_body"],
    )


@dataclass(frozen=True)
class Unresolved:
    """A counted decision whose outcome is missing or unknown."""

    decision_id: UUID
    account_id: str
    trading_day: date
    decided_at: datetime
    external_identifiers: tuple[str, ...]
    broker_order_id: str | None
    outcome: str | None
    # when the order was last known to be on its way (the unknown outcome, else the decision)
    since: datetime
    attempts: int
    age_seconds: float  # since ``since``, by the database's clock


async def claim_unresolved(
    conn: Conn, holder: str, *, grace_seconds: float, lease_seconds: float, limit: int = 20
) -> list[Unresolved]:
    """Claim (lease for ``lease_seconds``) up to ``limit`` unresolved decisions no other
    replica holds: those with an ``unknown`` outcome, and those with none decided more than
    ``grace_seconds`` ago (a forward still running has its outcome within its timeouts)."""
    rows = await conn.fetch(
        """
        WITH candidates AS (
            SELECT f.decision_id, f.account_id, f.trading_day, d.decided_at,
                   coalesce(d.detail -> 'external_identifiers', '[]') AS ids,
                   f.broker_order_id, f.outcome, f.since
            FROM orders_in_flight f JOIN risk_decisions d USING (decision_id)
            WHERE (f.outcome IS NULL OR f.outcome = 'unknown')
              AND f.trading_day >= (now() AT TIME ZONE 'America/New_York')::date - 7
              AND (f.outcome = 'unknown' OR f.since < now() - make_interval(secs => $2))
            ORDER BY f.decision_row_id LIMIT $4
        ),
        claimed AS (
            INSERT INTO order_reconcile_leases AS l (decision_id, holder, leased_until, attempts)
            SELECT decision_id, $1, now() + make_interval(secs => $3), 1 FROM candidates
            ON CONFLICT (decision_id) DO UPDATE
                SET holder = excluded.holder, leased_until = excluded.leased_until,
                    attempts = l.attempts + 1
                WHERE l.leased_until < now() OR l.holder = excluded.holder
            RETURNING l.decision_id, l.attempts
        )
        SELECT c.*, claimed.attempts, extract(epoch FROM now() - c.since)::float8 AS age
        FROM candidates c JOIN claimed USING (decision_id)
        ORDER BY c.decided_at
        """,
        holder,
        grace_seconds,
        lease_seconds,
        limit,
    )
    return [
        Unresolved(
            decision_id=r["decision_id"],
            account_id=r["account_id"],
            trading_day=r["trading_day"],
            decided_at=r["decided_at"],
            external_identifiers=tuple(json.loads(r["ids"])),
            broker_order_id=r["broker_order_id"],
            outcome=r["outcome"],
            since=r["since"],
            attempts=r["attempts"],
            age_seconds=r["age"],
        )
        for r in rows
    ]


async def release(conn: Conn, decision_id: UUID) -> None:
    """Drop the lease of a resolved decision."""
    await conn.execute("DELETE FROM order_reconcile_leases WHERE decision_id = $1", decision_id)


async def resolve(
    conn: Conn,
    item: Unresolved,
    outcome: str,
    *,
    broker_order_id: str | None,
    answer_body: str | None,
    resolution: str,
) -> bool:
    """Append the resolved outcome unless one is there already (another writer won); drop
    the lease. Returns whether this call recorded it."""
    async with conn.transaction():
        inserted = await conn.fetchval(
            """
            INSERT INTO order_outcomes
                (decision_id, account_id, outcome, http_status, broker_order_id, answer_body,
                 resolution)
            SELECT $1, $2, $3, NULL, $4, $5, $6
            WHERE NOT EXISTS (SELECT 1 FROM order_outcomes
                              WHERE decision_id = $1 AND outcome <> 'unknown')
            ON CONFLICT DO NOTHING
            RETURNING id
            """,
            item.decision_id,
            item.account_id,
            outcome,
            broker_order_id,
            answer_body,
            resolution,
        )
        await release(conn, item.decision_id)
    return inserted is not None


async def unresolved_orders(conn: Conn, account_id: str) -> list[dict[str, Any]]:
    """The account's counted decisions still unresolved, oldest first (the status route)."""
    rows = await conn.fetch(
        """
        SELECT f.decision_id, d.decided_at, f.outcome,
               d.detail -> 'external_identifiers' AS ids
        FROM orders_in_flight f JOIN risk_decisions d USING (decision_id)
        WHERE f.account_id = $1 AND (f.outcome IS NULL OR f.outcome = 'unknown')
        ORDER BY f.decision_row_id
        """,
        account_id,
    )
    return [
        {
            "decision_id": str(r["decision_id"]),
            "decided_at": r["decided_at"].isoformat(),
            "outcome": r["outcome"] or "pending",
            "external_identifiers": json.loads(r["ids"]) if r["ids"] else [],
        }
        for r in rows
    ]
