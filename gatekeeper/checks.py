"""The risk engine without forwarding: ``validate_trade`` (admin API) and ``check-order``
(CLI) decide an order exactly as the proxy would (same parser, state, transaction and
decision row, as a dry-run that reserves nothing), and the status route's figures of today.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import uuid4

from pydantic import BaseModel

from gatekeeper.adapters import decisions as db
from gatekeeper.adapters import outcomes
from gatekeeper.adapters.pg import Conn
from gatekeeper.core import InvalidOrder, parse_order, trading_day
from gatekeeper.orderpath.decided import OrderRequest, Result
from gatekeeper.orderpath.engine import Engine

ROUTE_KIND = "validate_trade"
# Goes into the broker's URL path: letters, digits, '-' and '_' only.
_ACCOUNT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


async def check_order(
    engine: Engine,
    account: str,
    order: Mapping[str, Any],
    broker_authorization: str | None,
    *,
    route_kind: str = ROUTE_KIND,
) -> Result:
    """Decide ``order`` (the seed's simple form or TastyTrade's) for ``account``.

    The account state comes from the cache when fresh enough, else from the broker with
    ``broker_authorization`` (the ``Authorization`` value a bot of that account uses).
    """
    if _ACCOUNT.fullmatch(account) is None:
        raise InvalidOrder("invalid_order: account: not an account number")
    parsed = parse_order(order, allow_simple=True)
    headers = {} if broker_authorization is None else {"Authorization": broker_authorization}
    request = OrderRequest(
        account, route_kind, parsed, dry_run=True, client_headers=headers, operator_check=True
    )
    return await engine.decide(request, uuid4(), time.perf_counter())


def verdict_payload(result: Result) -> dict[str, Any]:
    """The JSON answer: verdict, every violation (code, message, inputs), notes, figures."""
    detail = result.decision.as_dict()
    return {
        "valid": result.decision.allowed,
        "verdict": detail["verdict"],
        "decision_id": str(result.decision_id),
        "message": result.decision.message,
        "violations": [
            {key: v[key] for key in ("code", "message", "inputs", "protection_id")}
            for v in detail["violations"]
        ],
        "notes": detail["notes"],
        "figures": detail["figures"],
        "trading_day": result.trading_day.isoformat(),
    }


class TodayFigures(BaseModel):
    """Today's figures of an account (America/New_York trading day), as of its last decision."""

    trading_day: date
    start_of_day_nlv: Decimal | None
    trades_today: int
    max_daily_trades: int | None
    as_of: datetime | None
    last_verdict: str | None
    nlv: Decimal | None
    day_pnl_pct: Decimal | None
    cash_after_pct: Decimal | None
    exposure_after_pct: Decimal | None
    largest_concentration_underlying: str | None
    largest_concentration_pct: Decimal | None
    # Counted orders whose broker answer is not known yet (pending or unknown), oldest first:
    # they count as trades and in flight until the reconciler resolves them.
    unresolved_orders: list[dict[str, Any]] = []


async def today_figures(
    conn: Conn, account: str, max_daily_trades: int | None
) -> TodayFigures | None:
    """``None`` until the account has a decision today."""
    day = trading_day(await db.database_now(conn))
    latest = await db.latest_decision(conn, account, day)
    if latest is None:
        return None
    figures = latest["detail"].get("figures", {})
    return TodayFigures(
        trading_day=day,
        start_of_day_nlv=await db.recorded_start_of_day(conn, account, day),
        trades_today=await db.trades_today(conn, account, day),
        max_daily_trades=max_daily_trades,
        as_of=latest["decided_at"],
        last_verdict=latest["verdict"],
        nlv=figures.get("nlv"),
        day_pnl_pct=figures.get("day_pnl_pct"),
        cash_after_pct=figures.get("cash_after_pct"),
        exposure_after_pct=figures.get("exposure_after_pct"),
        largest_concentration_underlying=figures.get("largest_concentration_underlying"),
        largest_concentration_pct=figures.get("largest_concentration_pct"),
        unresolved_orders=await outcomes.unresolved_orders(conn, account),
    )
