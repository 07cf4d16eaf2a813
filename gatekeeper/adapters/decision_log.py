"""Reading the decision log: today's (or any period's) decisions, newest first, and one
decision in full. Read-only; the order path writes these rows (``adapters/decisions.py``).

A decision's outcome is its newest ``order_outcomes`` row (``LATEST_OUTCOME``); an allowed
placement without one is ``pending``. Its order summary is ``detail->'summary'``; rows written
before the summary existed get one from their reserved orders when they have them (allowed
placements), else an empty one.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from uuid import UUID

from pydantic import ValidationError

from gatekeeper.adapters.decisions import LATEST_OUTCOME
from gatekeeper.adapters.pg import Conn
from gatekeeper.core.order import Order
from gatekeeper.core.summary import order_summary
from gatekeeper.core.tradingday import NEW_YORK, trading_day

__all__ = [
    "MAX_LIMIT",
    "DecisionListItem",
    "InvalidTimeBound",
    "get_decision",
    "list_decisions",
    "parse_time_bound",
    "summary_of",
]

MAX_LIMIT = 500
PENDING = "pending"


@dataclass(frozen=True)
class DecisionListItem:
    """One row of the decision list (no tokens, no request headers: none are stored)."""

    id: int
    decision_id: UUID
    decided_at: datetime
    account_id: str
    route_kind: str
    verdict: str
    codes: list[str]
    message: str
    summary: dict[str, Any]
    figures: dict[str, Any]
    outcome: str | None
    broker_order_id: str | None


def _json(value: Any) -> Any:
    """asyncpg hands jsonb over as text (no codec is registered on our connections)."""
    return json.loads(value) if isinstance(value, str) else value


def summary_of(stored: Any, reserved_orders: Any) -> dict[str, Any]:
    """``detail->'summary'`` if the row has one, else one made from its reserved orders
    (older rows), else ``{}``."""
    summary = _json(stored)
    if isinstance(summary, dict):
        return summary
    orders = _json(reserved_orders)
    if not isinstance(orders, list) or not orders:
        return {}
    try:
        parsed = [Order.model_validate(order) for order in orders]
    except ValidationError:
        return {}
    if len(parsed) == 1:
        return order_summary(parsed[0])
    parts = [order_summary(order) for order in parsed]
    return {**parts[0], "legs": [leg for p in parts for leg in p["legs"]], "orders": parts}


def _outcome(verdict: str, trade_count: int, outcome: str | None) -> str | None:
    if outcome is None and verdict == "allow" and trade_count > 0:
        return PENDING
    return outcome


_LIST_SQL = f"""
    SELECT d.id, d.decision_id, d.decided_at, d.account_id, d.route_kind, d.verdict, d.codes,
           d.message, d.trade_count, d.detail -> 'summary' AS summary,
           CASE WHEN d.detail ? 'summary' THEN NULL ELSE d.reserved_orders END AS reserved,
           coalesce(d.detail -> 'figures', '{{}}'::jsonb) AS figures,
           o.outcome, o.broker_order_id
    FROM risk_decisions d
    {LATEST_OUTCOME}
    WHERE ($1::text IS NULL OR d.account_id = $1)
      AND ($2::timestamptz IS NULL OR d.decided_at >= $2)
      AND ($3::timestamptz IS NULL OR d.decided_at < $3)
      AND ($4::text IS NULL OR d.verdict = $4)
      AND ($5::text IS NULL OR $5 = ANY (d.codes))
      AND ($6::bigint IS NULL OR d.id < $6)
      AND ($8::text[] IS NULL OR d.account_id = ANY ($8))
    ORDER BY d.id DESC
    LIMIT $7
    """  # noqa: S608 - constants only


async def list_decisions(
    conn: Conn,
    *,
    account_id: str | None,
    since: datetime | None,
    until: datetime | None = None,
    verdict: str | None,
    code: str | None,
    limit: int = 50,
    before_id: int | None = None,
    accounts: Collection[str] | None = None,
) -> list[DecisionListItem]:
    """Decisions matching every filter given (``since`` inclusive, ``until`` exclusive; a
    ``code`` among the row's codes; ``accounts``: only these, e.g. a viewer's own), newest
    first, at most ``limit`` (1..MAX_LIMIT).

    Keyset pagination: pass the last item's ``id`` as ``before_id`` for the next page."""
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_LIMIT}")
    only = None if accounts is None else list(accounts)
    rows = await conn.fetch(
        _LIST_SQL, account_id, since, until, verdict, code, before_id, limit, only
    )
    return [
        DecisionListItem(
            id=row["id"],
            decision_id=row["decision_id"],
            decided_at=row["decided_at"],
            account_id=row["account_id"],
            route_kind=row["route_kind"],
            verdict=row["verdict"],
            codes=list(row["codes"]),
            message=row["message"],
            summary=summary_of(row["summary"], row["reserved"]),
            figures=_json(row["figures"]) or {},
            outcome=_outcome(row["verdict"], row["trade_count"], row["outcome"]),
            broker_order_id=row["broker_order_id"],
        )
        for row in rows
    ]


_DECISION_SQL = """
    SELECT id, decision_id, account_id, route_kind, verdict, codes, notes, message, detail,
           trading_day, trade_count, reserved_orders, replaces_order_id, latency_ms,
           decided_at, chain_seq
    FROM risk_decisions WHERE decision_id = $1
    """

_OUTCOMES_SQL = """
    SELECT id, outcome, http_status, broker_order_id, resolution, recorded_at, answer_body
    FROM order_outcomes WHERE decision_id = $1 ORDER BY id
    """


def _plain(record: Mapping[str, Any]) -> dict[str, Any]:
    return {key: record[key] for key in record.keys()}  # noqa: SIM118 - asyncpg Record


async def get_decision(conn: Conn, decision_id: UUID) -> dict[str, Any] | None:
    """Everything recorded for one decision: the row (``detail`` and ``reserved_orders``
    parsed), its ``summary``, every outcome row (oldest first) and the latest ``outcome``
    (``pending`` for an allowed placement without one); None if there is no such decision."""
    row = await conn.fetchrow(_DECISION_SQL, decision_id)
    if row is None:
        return None
    decision = _plain(row)
    decision["codes"] = list(row["codes"])
    decision["notes"] = list(row["notes"])
    decision["detail"] = _json(row["detail"])
    decision["reserved_orders"] = _json(row["reserved_orders"])
    detail = decision["detail"] if isinstance(decision["detail"], dict) else {}
    decision["summary"] = summary_of(detail.get("summary"), decision["reserved_orders"])
    decision["figures"] = detail.get("figures") or {}
    outcomes = [_plain(outcome) for outcome in await conn.fetch(_OUTCOMES_SQL, decision_id)]
    decision["outcomes"] = outcomes
    latest = outcomes[-1] if outcomes else None
    decision["outcome"] = _outcome(
        row["verdict"], row["trade_count"], None if latest is None else latest["outcome"]
    )
    decision["broker_order_id"] = None if latest is None else latest["broker_order_id"]
    return decision


class InvalidTimeBound(ValueError):
    """A ``since``/``until`` that is none of the accepted forms."""


_DURATION = re.compile(r"(?P<amount>\d{1,6})(?P<unit>[smhd])")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_time_bound(text: str, now: datetime) -> datetime:
    """``since``/``until`` as an operator types it: ``today`` (the trading day's start,
    midnight in New York), a date ``YYYY-MM-DD`` (its start in New York), a duration back from
    ``now`` (``15m``, ``2h``, ``7d``), or an ISO 8601 time with its offset
    (``2026-12-04T14:30:00Z``)."""
    text = text.strip()
    day: date | None = None
    if text == "today":
        day = trading_day(now)
    elif re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise InvalidTimeBound(f"{text!r} is not a date") from None
    if day is not None:
        return datetime.combine(day, time(), NEW_YORK)
    duration = _DURATION.fullmatch(text)
    if duration is not None:
        return now - timedelta(seconds=int(duration["amount"]) * _SECONDS[duration["unit"]])
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise InvalidTimeBound(
            f"{text[:40]!r}: use today, a date (YYYY-MM-DD), a duration (15m, 2h, 7d) or an"
            " ISO 8601 time with its offset (2026-12-04T14:30:00Z)"
        )
    return moment
