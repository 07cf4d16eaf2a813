"""What the console's account cards show: the status route's data (protections, stop state,
what the stop did with working orders, today's figures) and the gauges' utilisation, read
through the same functions (gatekeeper.web.admin_api, gatekeeper.status_job,
gatekeeper.account_gauges), so the console, the API and ``/metrics`` never disagree."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from gatekeeper.account_gauges import LIMIT_LABELS, AccountLimits, utilisation
from gatekeeper.adapters import account_status, stops
from gatekeeper.adapters import decisions as db
from gatekeeper.adapters import protections as store
from gatekeeper.adapters.pg import Conn
from gatekeeper.auth import Principal
from gatekeeper.checks import TodayFigures, today_figures
from gatekeeper.core import trading_day
from gatekeeper.status_job import account_status_of as gauge_status
from gatekeeper.web.admin_stops import account_cancels
from gatekeeper.web.cancel_models import WorkingOrdersOnStop

# What each utilisation bar measures, in an operator's words.
BAR_NAMES = {
    "max_portfolio_exposure": "Exposure",
    "max_position_concentration": "Largest concentration",
    "cash_reserve": "Spendable cash used",
    "max_daily_loss": "Daily loss",
    "max_daily_trades": "Trades today",
}
# A bar turns amber from here (the alerts' threshold), red at the limit.
WARN_AT = 0.8


@dataclass(frozen=True)
class Bar:
    limit: str  # the gauge's label, e.g. max_daily_loss
    name: str
    share: float | None  # 1.0: at the limit; None: not known yet today

    @property
    def level(self) -> str:
        if self.share is None:
            return "unknown"
        return "over" if self.share >= 1 else "warn" if self.share >= WARN_AT else "ok"


@dataclass(frozen=True)
class AccountCard:
    account_id: str
    protections: list[store.Protection]  # those the viewer may see
    limits: AccountLimits  # the tightest of the account's active protections
    max_single_trade_pct: Decimal | None
    account_stopped: bool  # a protection of any owner holds a stop
    stopped: list[store.Protection]  # of those the viewer may see, the ones holding a stop
    globally_stopped: bool
    bars: list[Bar]
    today: TodayFigures | None  # as of the last decision, of any verdict (the status route's)
    # The figures of the last allowed, counted order today (what the bars measure): a
    # rejected order's "after" figures describe a state that never exists.
    in_use: Mapping[str, Any] | None
    working_orders: WorkingOrdersOnStop
    trades_today: int = 0

    @property
    def stop_active(self) -> bool:
        return self.account_stopped or self.globally_stopped


@dataclass(frozen=True)
class Overview:
    global_stop: stops.GlobalStop
    cards: list[AccountCard]


def _by_account(found: list[store.Protection]) -> dict[str, list[store.Protection]]:
    grouped: dict[str, list[store.Protection]] = {}
    for protection in found:
        grouped.setdefault(protection.account_id, []).append(protection)
    return grouped


async def overview(conn: Conn, principal: Principal) -> Overview:
    """One card per account the principal may see (admins: every protected account)."""
    day = trading_day(await db.database_now(conn))
    visible = _by_account(await store.list_protections(conn, principal.owner_scope, None))
    rows = {row.account_id: row for row in await account_status.protected_accounts(conn, day)}
    global_stop = await stops.global_stop(conn)
    cards = []
    for account, protections in sorted(visible.items()):
        row = rows.get(account)
        if row is None:  # created after the first read: shown on the next refresh
            continue
        status = gauge_status(row)
        shares = utilisation(status)
        active = [p for p in protections if p.active]
        cards.append(
            AccountCard(
                account_id=account,
                protections=protections,
                limits=status.limits,
                max_single_trade_pct=min(
                    (p.max_single_trade_percentage for p in active), default=None
                ),
                account_stopped=row.stop_active,
                stopped=[p for p in protections if p.emergency_stop_active],
                globally_stopped=global_stop.active,
                bars=[Bar(name, BAR_NAMES[name], shares.get(name)) for name in LIMIT_LABELS],
                today=await today_figures(conn, account, status.limits.max_daily_trades),
                in_use=row.usage_figures,
                working_orders=await account_cancels(conn, account),
                trades_today=status.trades_today,
            )
        )
    return Overview(global_stop, cards)


async def visible_accounts(conn: Conn, principal: Principal) -> list[str]:
    """The accounts whose protections the principal may see (the status route's scope)."""
    found = await store.list_protections(conn, principal.owner_scope, None)
    return sorted({p.account_id for p in found})
