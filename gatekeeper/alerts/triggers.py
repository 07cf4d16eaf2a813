"""What raises an alert besides a stop (those are enqueued with their ``emergency_events`` row,
gatekeeper.adapters.protection_stops).

- :func:`decision_alerts`, called by the engine inside each decision's transaction, after its
  row: the daily-loss limit reached (once per account and day), a limit above the threshold
  (once per account, limit and day; the share in use as the per-account gauges compute it,
  gatekeeper.account_gauges), a burst of rejections (once per window). Each is one INSERT,
  and only when due. A daily alert this process knows is in the outbox (:class:`RaisedAlerts`)
  is not sent again: an account above a threshold all day costs its orders no round trip.
- :class:`FailureNotes`: the risk path failing (database, cache or broker state unavailable).
  A database outage is exactly when the outbox cannot be written, and the order path must not
  wait on it: failures are noted in memory (bounded, one entry per account and reason with a
  count) and the worker writes them to the outbox once Postgres answers. While it does not,
  no order passes anyway (fail closed), and /readyz and the metrics show the outage.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from functools import partial
from typing import Any

from gatekeeper.account_gauges import FIGURE_NAMES, AccountStatus, tightest, utilisation
from gatekeeper.adapters.pg import Conn
from gatekeeper.alerts import outbox
from gatekeeper.core import Decision, Limits
from gatekeeper.core.codes import Code
from gatekeeper.errors import RiskPathUnavailable
from gatekeeper.orderpath.decided import DecisionHook, OrderRequest
from gatekeeper.settings import AlertSettings

_HUNDRED = Decimal(100)
Payload = Callable[[], Mapping[str, Any]]
# How long before its window ends (by the database's clock) a burst alert stops being taken
# as known: the hosts' clocks drift a little over a window.
_BURST_MARGIN_SECONDS = 1.0


def _pct(ratio: float) -> Decimal:
    return (Decimal(str(ratio)) * _HUNDRED).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


def _burst(base: dict[str, Any], decision: Decision, settings: AlertSettings) -> dict[str, Any]:
    last = {"codes": ",".join(c.value for c in decision.codes), "message": decision.message}
    return {**base, **last, "window_seconds": round(settings.rejection_burst_window_seconds)}


def _with_figures(payload: dict[str, Any], decision: Decision) -> dict[str, Any]:
    return {**payload, "figures": decision.as_dict()["figures"]}


class RaisedAlerts:
    """The alerts this process knows are committed to the outbox, each until when (monotonic)
    it is known, at most ``limit`` of them (all forgotten when full, to be learned again):
    they are not sent to Postgres again meanwhile. A daily alert is known from an INSERT that
    conflicted (it waits for the transaction that wrote the key: the key is committed) or that
    appended it outside a transaction; an account's rejection burst from one it appended
    outside a transaction, for the rest of its window."""

    def __init__(self, limit: int = 4096) -> None:
        self._until: dict[str, float] = {}
        self._limit = limit

    def __contains__(self, key: str) -> bool:
        return self._until.get(key, 0.0) > time.monotonic()

    def _learn(self, key: str, until: float) -> None:
        if len(self._until) >= self._limit and key not in self._until:
            self._until.clear()
        self._until[key] = until

    async def enqueue(
        self, conn: Conn, kind: str, account: str, key: str, payload: Payload
    ) -> None:
        """:func:`outbox.enqueue` with ``dedup_key=key`` unless ``key`` is known to be in
        the outbox (``payload`` is built only when it is sent)."""
        if key in self:
            return
        appended = await outbox.enqueue(conn, kind, account, payload(), dedup_key=key)
        if not appended or not conn.is_in_transaction():
            self._learn(key, math.inf)

    async def rejection_burst(
        self, conn: Conn, account: str, settings: AlertSettings, payload: Payload
    ) -> None:
        """:func:`outbox.enqueue_rejection_burst`, unless this process appended the account's
        alert of the current window (outside a transaction): the rest of that window, by the
        database's clock less a margin, would only conflict."""
        key = f"rejection_burst:{account}"
        if key in self:
            return
        window = settings.rejection_burst_window_seconds
        started = time.monotonic()
        left = await outbox.enqueue_rejection_burst(
            conn, account, settings.rejection_burst_count, window, payload()
        )
        if left is not None and not conn.is_in_transaction():
            self._learn(key, started + left - min(_BURST_MARGIN_SECONDS, window / 10))


async def decision_alerts(
    conn: Conn,
    settings: AlertSettings,
    request: OrderRequest,
    decision: Decision,
    limits: tuple[Limits, ...],
    trades_before: int,
    day: date,
    raised: RaisedAlerts,
) -> None:
    """Enqueue the alerts ``decision`` raises (see the module docstring); ``raised``: the
    alerts this process knows are in the outbox already."""
    account = request.account
    base: dict[str, Any] = {"trading_day": day.isoformat()}
    if Code.MAX_DAILY_LOSS in decision.codes:
        message = next(v.message for v in decision.violations if v.code is Code.MAX_DAILY_LOSS)
        await raised.enqueue(
            conn,
            "daily_loss_limit_reached",
            account,
            f"daily_loss:{account}:{day.isoformat()}",
            partial(_with_figures, {**base, "message": message}, decision),
        )
    if not decision.allowed:
        await raised.rejection_burst(
            conn, account, settings, partial(_burst, base, decision, settings)
        )
    counted = decision.allowed and decision.trade_count > 0 and not request.dry_run
    applied = tightest(limits)
    status = AccountStatus(
        account=account,
        stop_active=False,
        trades_today=trades_before + (decision.trade_count if counted else 0),
        limits=applied,
        day_pnl_pct=decision.figures.day_pnl_pct,
        usage_figures={name: getattr(decision.figures, name) for name in FIGURE_NAMES}
        if counted
        else None,
    )
    threshold = float(settings.utilisation_threshold_percentage / _HUNDRED)
    for limit, share in utilisation(status).items():
        if share is None or share < threshold:
            continue
        if limit == "max_daily_loss" and Code.MAX_DAILY_LOSS in decision.codes:
            continue  # the limit-reached alert says it
        payload = {
            **base,
            "limit": limit,
            "utilisation_pct": str(_pct(share)),
            "threshold_pct": str(settings.utilisation_threshold_percentage),
            "trades_today": status.trades_today,
            "max_daily_trades": applied.max_daily_trades,
        }
        key = f"limit_utilisation:{account}:{limit}:{day.isoformat()}"
        await raised.enqueue(
            conn, "limit_utilisation", account, key, partial(_with_figures, payload, decision)
        )


@dataclass
class _Noted:
    count: int
    first_at: datetime
    last_at: datetime


class FailureNotes:
    """Risk-path failures not yet in the outbox, one entry per (account, reason), at most
    ``limit`` of them (the oldest is dropped, and counted, beyond that)."""

    def __init__(self, limit: int = 256) -> None:
        self._limit = limit
        self._notes: OrderedDict[tuple[str, str], _Noted] = OrderedDict()
        self.dropped = 0

    def note(self, account: str, error: BaseException) -> None:
        """Remember a failure of the order path (anything but the risk path is ignored).
        No I/O: safe on the order path."""
        if not isinstance(error, RiskPathUnavailable):
            return
        now = datetime.now(UTC)
        key = (account, error.code)
        noted = self._notes.get(key)
        if noted is not None:
            noted.count += 1
            noted.last_at = now
            return
        if len(self._notes) >= self._limit:
            self._notes.popitem(last=False)
            self.dropped += 1
        self._notes[key] = _Noted(1, now, now)

    async def flush(self, conn: Conn, interval_seconds: float) -> int:
        """Write the noted failures to the outbox, one alert per account, reason and
        ``interval_seconds`` (by the first failure's time); raises what the database raises,
        and then keeps what was not written."""
        written = 0
        while self._notes:
            (account, code), noted = next(iter(self._notes.items()))
            window = int(noted.first_at.timestamp() // interval_seconds)
            payload = {
                "code": code,
                "count": noted.count,
                "first_at": noted.first_at.isoformat(),
                "last_at": noted.last_at.isoformat(),
            }
            key = f"risk_path_failed:{account}:{code}:{window}"
            await outbox.enqueue(conn, "risk_path_failed", account, payload, dedup_key=key)
            del self._notes[(account, code)]
            written += 1
        return written

    def __len__(self) -> int:
        return len(self._notes)


def decision_hook(settings: AlertSettings) -> DecisionHook:
    """The engine's ``after_decision``: :func:`decision_alerts` with ``settings`` (and what
    this process has raised)."""
    raised = RaisedAlerts()

    async def hook(
        conn: Any,
        request: OrderRequest,
        decision: Decision,
        limits: tuple[Limits, ...],
        trades_before: int,
        day: date,
    ) -> None:
        await decision_alerts(conn, settings, request, decision, limits, trades_before, day, raised)

    return hook
