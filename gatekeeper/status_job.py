"""The status job: every ``admin.status_refresh_seconds`` it reads Postgres and refreshes the
per-account gauges (gatekeeper.account_gauges) and the global stop's gauge, and counts the
emergency events recorded since its last run, whatever their origin: the accounts' (scope
``account``, ``emergency_events``) and the global stop's (scope ``global``,
``global_emergency_events``). The CLI runs in its own process and other replicas have their
own metrics: the database is the one place every stop and clear goes through.

Every replica counts every event it reads (``gatekeeper_emergency_stop_events_total`` is the
same on all of them): aggregate it with ``max``, not ``sum``. Counting starts from the newest
event when the job first reaches the database (no history is replayed at start-up).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal

import asyncpg
from aiohttp import web

from gatekeeper.account_gauges import (
    AccountLimits,
    AccountStatus,
    figures_from_text,
    forget_accounts,
    publish_status,
)
from gatekeeper.adapters import account_status as store
from gatekeeper.adapters import decisions as db
from gatekeeper.adapters import stops
from gatekeeper.adapters.pg import DB_DOWN, Conn
from gatekeeper.core import trading_day
from gatekeeper.metrics import Metrics
from gatekeeper.waits import wait_event
from gatekeeper.web import keys

log = logging.getLogger(__name__)

SCOPES = ("account", "global")
EVENTS = ("triggered", "cleared")
VIAS = ("api", "cli", "system")
# Ids are handed out before commit: an event may become visible after a newer one. Ids this
# far below the newest seen are read again (and skipped when already counted).
_REREAD_WINDOW = 256
_DB_ERRORS: tuple[type[BaseException], ...] = (*DB_DOWN, asyncpg.PostgresError)

_Newest = Callable[[Conn], Awaitable[int]]
_After = Callable[[Conn, int], Awaitable[list[store.EventRow]]]
# Each scope's events table: its newest id, and its events after an id (ids are per table).
_SOURCES: dict[str, tuple[_Newest, _After]] = {
    "account": (store.last_event_id, store.events_after),
    "global": (stops.last_global_event_id, stops.global_events_after),
}


@dataclass
class _Cursor:
    """How far one events table has been counted."""

    newest: int | None = None  # None: the baseline is not taken yet
    counted: set[int] = field(default_factory=set)


class StatusJob:
    """Refreshes the gauges and the stop-event counter from Postgres (one run: :meth:`run_once`)."""

    def __init__(self, pool: asyncpg.Pool, metrics: Metrics) -> None:
        self._pool = pool
        self._metrics = metrics
        self._cursors = {scope: _Cursor() for scope in SCOPES}
        for scope in SCOPES:
            for event in EVENTS:
                for via in VIAS:  # present at 0, so the first event is an increase
                    metrics.emergency_stop_events.labels(scope, event, via)

    async def run_once(self) -> None:
        """Read the database once and publish what it says."""
        async with self._pool.acquire() as conn:
            day = trading_day(await db.database_now(conn))
            accounts = await store.protected_accounts(conn, day)
            global_stop = await stops.global_stop(conn)
            read = {scope: await self._read(conn, scope) for scope in SCOPES}
        for row in accounts:
            publish_status(self._metrics, account_status_of(row))
        forget_accounts(self._metrics, {row.account_id for row in accounts})
        self._metrics.global_emergency_stop_active.set(1 if global_stop.active else 0)
        for scope, (newest, events) in read.items():
            self._count(scope, newest, events)

    async def _read(self, conn: Conn, scope: str) -> tuple[int, list[store.EventRow]]:
        newest_id, events_after = _SOURCES[scope]
        cursor = self._cursors[scope]
        newest = await newest_id(conn) if cursor.newest is None else cursor.newest
        return newest, await events_after(conn, newest - _REREAD_WINDOW)

    def _count(self, scope: str, newest: int, events: list[store.EventRow]) -> None:
        cursor = self._cursors[scope]
        if cursor.newest is None:  # what happened before this process started is not counted
            cursor.newest = newest
            cursor.counted = {event.id for event in events if event.id <= newest}
        for event in events:
            if event.id in cursor.counted or event.event not in EVENTS or event.via not in VIAS:
                continue
            cursor.counted.add(event.id)
            self._metrics.emergency_stop_events.labels(scope, event.event, event.via).inc()
            cursor.newest = max(cursor.newest, event.id)
        floor = cursor.newest - _REREAD_WINDOW
        cursor.counted = {event_id for event_id in cursor.counted if event_id > floor}

    async def run(self, interval: float, wake: asyncio.Event) -> None:
        """Run every ``interval`` seconds, or sooner when ``wake`` is set, until cancelled; a
        failed run is logged and counted."""
        while True:
            wake.clear()
            try:
                await self.run_once()
            except _DB_ERRORS as error:
                self._metrics.status_refresh_failures.inc()
                log.warning("status job: database unavailable (%s)", type(error).__name__)
            await wait_event(wake, interval)


def _decimal(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def account_status_of(row: store.AccountRow) -> AccountStatus:
    """The per-account gauges' view of an account's stored status (also the console's)."""
    return AccountStatus(
        account=row.account_id,
        stop_active=row.stop_active,
        trades_today=row.trades_today,
        limits=AccountLimits(
            exposure_pct=row.exposure_pct,
            concentration_pct=row.concentration_pct,
            cash_reserve_pct=row.cash_reserve_pct,
            daily_loss_pct=row.daily_loss_pct,
            max_daily_trades=row.max_daily_trades,
        ),
        day_pnl_pct=_decimal(row.day_pnl_pct),
        usage_figures=None if row.usage_figures is None else figures_from_text(row.usage_figures),
    )


async def _status_job(app: web.Application) -> AsyncIterator[None]:
    job = StatusJob(app[keys.PG_POOL], app[keys.METRICS])
    interval = app[keys.SETTINGS].admin.status_refresh_seconds
    task = asyncio.create_task(job.run(interval, app[_WAKE]), name="gatekeeper-status-job")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


_WAKE = web.AppKey("status_job_wake", asyncio.Event)


async def _wake_after_change(request: web.Request, response: web.StreamResponse) -> None:
    # A stop or clear through this listener (any admin API write) shows within a round trip,
    # not at the next period.
    if request.method not in ("GET", "HEAD") and response.status < 400:
        request.app[_WAKE].set()


def add_status_job(app: web.Application) -> None:
    """Run the job while the admin listener runs; a successful admin API write wakes it."""
    app[_WAKE] = asyncio.Event()
    app.cleanup_ctx.append(_status_job)
    app.on_response_prepare.append(_wake_after_change)
