"""What the status job reads: each protected account's stop and limits, today's trades and
figures, and the emergency events recorded since it last looked (any origin: API, CLI or the
engine, on any replica)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from gatekeeper.adapters import decisions as db
from gatekeeper.adapters.pg import Conn


@dataclass(frozen=True, slots=True)
class AccountRow:
    """One account with protections: the tightest limits of its active ones (``None``: no
    active protection), whether any holds a stop, and today's figures (``None``: no
    decision today)."""

    account_id: str
    stop_active: bool
    exposure_pct: Decimal | None
    concentration_pct: Decimal | None
    cash_reserve_pct: Decimal | None
    daily_loss_pct: Decimal | None
    max_daily_trades: int | None
    trades_today: int
    day_pnl_pct: str | None
    usage_figures: Mapping[str, Any] | None


_ACCOUNTS = """
SELECT account_id,
       bool_or(emergency_stop_triggered_at IS NOT NULL) AS stop_active,
       min(max_portfolio_exposure_percentage) FILTER (WHERE active) AS exposure_pct,
       min(max_position_concentration_percentage) FILTER (WHERE active) AS concentration_pct,
       max(cash_reserve_percentage) FILTER (WHERE active) AS cash_reserve_pct,
       min(max_daily_loss_percentage) FILTER (WHERE active) AS daily_loss_pct,
       min(max_daily_trades) FILTER (WHERE active) AS max_daily_trades
FROM portfolio_protections
GROUP BY account_id
ORDER BY account_id
"""

# The figures of the last order that counts today: what is in use once it fills.
_LAST_COUNTED = """
SELECT detail -> 'figures' FROM risk_decisions
WHERE account_id = $1 AND trading_day = $2 AND verdict = 'allow' AND trade_count > 0
ORDER BY id DESC LIMIT 1
"""


async def protected_accounts(conn: Conn, day: date) -> list[AccountRow]:
    """Every account with at least one protection, as of ``day`` (New York trading day)."""
    rows = []
    for row in await conn.fetch(_ACCOUNTS):
        account = row["account_id"]
        latest = await db.latest_decision(conn, account, day)
        counted = await conn.fetchval(_LAST_COUNTED, account, day)
        pnl = None if latest is None else latest["detail"].get("figures", {}).get("day_pnl_pct")
        rows.append(
            AccountRow(
                account_id=account,
                stop_active=row["stop_active"],
                exposure_pct=row["exposure_pct"],
                concentration_pct=row["concentration_pct"],
                cash_reserve_pct=row["cash_reserve_pct"],
                daily_loss_pct=row["daily_loss_pct"],
                max_daily_trades=row["max_daily_trades"],
                trades_today=await db.trades_today(conn, account, day),
                day_pnl_pct=None if pnl is None else str(pnl),
                usage_figures=None if counted is None else json.loads(counted),
            )
        )
    return rows


@dataclass(frozen=True, slots=True)
class EventRow:
    id: int
    event: str  # triggered | cleared
    via: str  # api | cli | system


async def last_event_id(conn: Conn) -> int:
    """The id of the newest emergency event (0 when there is none)."""
    found: int = await conn.fetchval("SELECT coalesce(max(id), 0) FROM emergency_events")
    return found


async def events_after(conn: Conn, after_id: int) -> list[EventRow]:
    """Emergency events with an id above ``after_id``, oldest first."""
    rows = await conn.fetch(
        "SELECT id, event, via FROM emergency_events WHERE id > $1 ORDER BY id", after_id
    )
    return [EventRow(row["id"], row["event"], row["via"]) for row in rows]
