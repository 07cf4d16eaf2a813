"""The alert outbox (sql/0027): the only module with its SQL.

Enqueueing is one INSERT on the caller's connection, inside the caller's transaction: an alert
exists exactly when what caused it was committed. Delivery rows are created by the workers
(:func:`fan_out`), claimed with FOR UPDATE SKIP LOCKED under a lease (:func:`claim`), and
closed by :func:`mark_delivered` / :func:`mark_failed`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gatekeeper.adapters.pg import Conn

# The account of an event about every account (the global stop).
ALL_ACCOUNTS = "*"

_EMAIL_WANTED = """
    CASE
        WHEN $3::bigint IS NOT NULL THEN coalesce(
            (SELECT email_alerts_enabled FROM portfolio_protections WHERE id = $3), false)
        WHEN $2 = '*' THEN EXISTS (
            SELECT 1 FROM portfolio_protections WHERE email_alerts_enabled)
        ELSE EXISTS (
            SELECT 1 FROM portfolio_protections WHERE account_id = $2 AND email_alerts_enabled)
    END
"""


async def enqueue(
    conn: Conn,
    kind: str,
    account: str,
    payload: Mapping[str, Any],
    *,
    dedup_key: str | None = None,
    protection_id: int | None = None,
) -> bool:
    """Append an alert event (a no-op when ``dedup_key`` was used before). Email is wanted
    when the protection (or, without one, any protection of the account) has
    ``email_alerts_enabled``. True when this call appended it."""
    status: str = await conn.execute(
        f"""
        INSERT INTO alert_events (kind, account_id, protection_id, dedup_key, email, payload)
        VALUES ($1, $2, $3, $4, {_EMAIL_WANTED}, $5::jsonb)
        ON CONFLICT (dedup_key) DO NOTHING
        """,  # noqa: S608 - a constant fragment
        kind,
        account,
        protection_id,
        dedup_key,
        json.dumps(payload, default=str),
    )
    return status == "INSERT 0 1"


async def enqueue_stop(
    conn: Conn,
    protection_id: int,
    account: str,
    event: str,
    mode: str | None,
    actor: str,
    reason: str | None,
    via: str,
) -> None:
    """A protection's stop triggered or cleared, with the id of its ``emergency_events`` row
    (written just before, in the same transaction), which links the working-order cancels."""
    payload = {"mode": mode, "actor": actor, "via": via, "reason": reason}
    await conn.execute(
        f"""
        INSERT INTO alert_events (kind, account_id, protection_id, email, payload)
        VALUES ($1, $2, $3, {_EMAIL_WANTED},
            $4::jsonb || jsonb_build_object('emergency_event_id',
                (SELECT max(id) FROM emergency_events WHERE protection_id = $3)))
        """,  # noqa: S608 - a constant fragment
        f"stop_{event}",
        account,
        protection_id,
        json.dumps(payload),
    )


# A burst alert when the account has at least $1 rejections in the last $4 seconds, at most
# one per window. Rows are counted up to $1 and no further, on the rejections' own index
# (sql/0039): a runaway bot's thousandth rejection costs what its tenth did. The payload's
# count is the threshold reached. Returns, when it appended the alert, the seconds left in its
# window by the database's clock.
REJECTION_BURST = f"""
    INSERT INTO alert_events (kind, account_id, dedup_key, email, payload)
    SELECT 'rejection_burst', $2,
        'rejection_burst:' || $2 || ':'
            || floor(extract(epoch FROM now())::float8 / $4::float8)::bigint,
        {_EMAIL_WANTED},
        $5::jsonb || jsonb_build_object('count', recent.n)
    FROM (
        SELECT count(*) AS n FROM (
            SELECT 1 FROM risk_decisions
            WHERE account_id = $2 AND verdict = 'reject'
              AND decided_at > now() - make_interval(secs => $4::float8)
            LIMIT $1::bigint
        ) AS counted
    ) AS recent
    WHERE recent.n >= $1::bigint AND $3::bigint IS NULL
    ON CONFLICT (dedup_key) DO NOTHING
    RETURNING $4::float8 * (floor(extract(epoch FROM now())::float8 / $4::float8) + 1)
        - extract(epoch FROM now())::float8
"""  # noqa: S608 - a constant fragment


async def enqueue_rejection_burst(
    conn: Conn, account: str, count: int, window_seconds: float, payload: Mapping[str, Any]
) -> float | None:
    """A burst alert when the account has at least ``count`` rejections in the last
    ``window_seconds`` (the current decision's row included): at most one per window. When
    this call appended it: the seconds left in its window (by the database's clock)."""
    left: float | None = await conn.fetchval(
        REJECTION_BURST,
        count,
        account,
        None,  # no protection: the account's protections decide about email
        window_seconds,
        json.dumps(payload, default=str),
    )
    return left


async def fan_out(conn: Conn, targets: Sequence[tuple[str, str]], email_configured: bool) -> int:
    """Create the delivery rows of recent events that have none: one per target (``("email",
    "email")`` first, always, so that every event gets at least one row; ``skipped`` when the
    event or the configuration wants no email). Safe on several replicas at once."""
    channels = [channel for channel, _ in targets]
    names = [name for _, name in targets]
    status: str = await conn.execute(
        """
        WITH fresh AS (
            SELECT e.id, e.email FROM alert_events e
            WHERE e.created_at > now() - interval '1 day'
              AND NOT EXISTS (SELECT 1 FROM alert_deliveries d WHERE d.event_id = e.id)
            ORDER BY e.id
            LIMIT 500
        )
        INSERT INTO alert_deliveries (event_id, channel, target, state)
        SELECT f.id, t.channel, t.target,
               CASE WHEN t.channel = 'email' AND NOT (f.email AND $3) THEN 'skipped'
                    ELSE 'pending' END
        FROM fresh f CROSS JOIN unnest($1::text[], $2::text[]) AS t(channel, target)
        ON CONFLICT (event_id, channel, target) DO NOTHING
        """,
        channels,
        names,
        email_configured,
    )
    return int(status.rsplit(" ", 1)[-1])


@dataclass(frozen=True)
class Claimed:
    """A delivery this worker holds until ``lease`` seconds from the claim."""

    delivery_id: int
    event_id: int
    channel: str
    target: str
    attempts: int


async def claim(conn: Conn, limit: int, lease_seconds: float) -> list[Claimed]:
    """Take up to ``limit`` due deliveries: their next attempt moves ``lease_seconds`` ahead
    (so no other worker takes them while this one sends) and their attempt count goes up."""
    rows = await conn.fetch(
        """
        WITH due AS (
            SELECT id FROM alert_deliveries
            WHERE state = 'pending' AND next_attempt_at <= now()
            ORDER BY next_attempt_at, id
            LIMIT $1
            FOR UPDATE SKIP LOCKED
        )
        UPDATE alert_deliveries d
        SET attempts = d.attempts + 1,
            next_attempt_at = now() + make_interval(secs => $2),
            updated_at = now()
        FROM due WHERE d.id = due.id
        RETURNING d.id, d.event_id, d.channel, d.target, d.attempts
        """,
        limit,
        lease_seconds,
    )
    return [Claimed(r["id"], r["event_id"], r["channel"], r["target"], r["attempts"]) for r in rows]


@dataclass(frozen=True)
class Event:
    """An alert event with what its message shows that was not known when it was written."""

    id: int
    kind: str
    account: str
    protection_id: int | None
    payload: Mapping[str, Any]
    created_at: datetime
    # stop_triggered: the account's last decision's figures up to the stop (the triggering
    # one for an automatic stop), working-order cancels by outcome, and the protection's
    # cancel_working_orders_on_stop.
    last_figures: Mapping[str, Any] | None = None
    cancels: Mapping[str, int] | None = None
    cancel_on_stop: bool | None = None


async def load_events(conn: Conn, event_ids: Sequence[int]) -> dict[int, Event]:
    rows = await conn.fetch(
        """
        SELECT e.id, e.kind, e.account_id, e.protection_id, e.payload, e.created_at,
            CASE WHEN e.kind = 'stop_triggered' THEN (
                SELECT r.detail -> 'figures' FROM risk_decisions r
                WHERE r.account_id = e.account_id AND r.decided_at <= e.created_at
                  AND r.detail ? 'figures'
                ORDER BY r.decided_at DESC, r.id DESC LIMIT 1) END AS last_figures,
            CASE WHEN e.kind = 'stop_triggered' THEN (
                SELECT jsonb_object_agg(outcome, n) FROM (
                    SELECT c.outcome, count(*) AS n FROM stop_order_cancels c
                    WHERE c.emergency_event_id = (e.payload ->> 'emergency_event_id')::bigint
                    GROUP BY c.outcome) AS counted) END AS cancels,
            (SELECT p.cancel_working_orders_on_stop FROM portfolio_protections p
             WHERE p.id = e.protection_id) AS cancel_on_stop
        FROM alert_events e WHERE e.id = ANY($1::bigint[])
        """,
        list(event_ids),
    )
    return {
        r["id"]: Event(
            id=r["id"],
            kind=r["kind"],
            account=r["account_id"],
            protection_id=r["protection_id"],
            payload=json.loads(r["payload"]),
            created_at=r["created_at"],
            last_figures=json.loads(r["last_figures"]) if r["last_figures"] else None,
            cancels=json.loads(r["cancels"]) if r["cancels"] else None,
            cancel_on_stop=r["cancel_on_stop"],
        )
        for r in rows
    }


async def mark_delivered(conn: Conn, delivery: Claimed) -> None:
    # attempts guards against a worker whose lease ran out and whose row another one retook.
    await conn.execute(
        "UPDATE alert_deliveries SET state = 'delivered', delivered_at = now(),"
        " last_error = NULL, updated_at = now() WHERE id = $1 AND attempts = $2",
        delivery.delivery_id,
        delivery.attempts,
    )


async def mark_failed(conn: Conn, delivery: Claimed, error: str, retry_in: float | None) -> None:
    """Record a failed attempt: due again in ``retry_in`` seconds, or given up (``None``)."""
    await conn.execute(
        """
        UPDATE alert_deliveries
        SET state = CASE WHEN $4::float8 IS NULL THEN 'failed' ELSE 'pending' END,
            next_attempt_at = CASE WHEN $4::float8 IS NULL THEN next_attempt_at
                                   ELSE now() + make_interval(secs => $4::float8) END,
            last_error = $3, updated_at = now()
        WHERE id = $1 AND attempts = $2
        """,
        delivery.delivery_id,
        delivery.attempts,
        error,
        retry_in,
    )
