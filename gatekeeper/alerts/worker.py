"""The delivery worker: one per process, on every replica, off the order path.

Each round: write the noted risk-path failures to the outbox, create the delivery rows of new
events, claim the due deliveries (FOR UPDATE SKIP LOCKED, under a lease longer than a send can
take, so replicas never send the same one), send them concurrently, and record each outcome:
delivered, due again after an exponential back-off, or failed once ``max_attempts`` is spent.
A failure is logged by its type (never a URL, address or credential) and counted in
``gatekeeper_alert_deliveries_total``. The order path only ever writes rows.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import asyncpg

from gatekeeper.adapters.pg import DB_DOWN, Conn
from gatekeeper.alerts import email, outbox, webhook
from gatekeeper.alerts.messages import Message, render
from gatekeeper.alerts.triggers import FailureNotes
from gatekeeper.alerts.webhook import DeliveryFailed
from gatekeeper.metrics import Metrics
from gatekeeper.settings import AlertSettings

log = logging.getLogger(__name__)

BATCH = 20
_LEASE_MARGIN_SECONDS = 30.0


class AlertWorker:
    """Delivers the outbox's alerts; holds the failures the order path notes."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: AlertSettings,
        metrics: Metrics,
        session: aiohttp.ClientSession,
    ) -> None:
        self.pool = pool
        self.settings = settings
        self.metrics = metrics
        self.session = session
        self.failures = FailureNotes()
        self._hooks = {hook.name: hook for hook in settings.webhooks}
        self._targets = [("email", "email")] + [("webhook", name) for name in self._hooks]
        self._database_down = False
        self._in_flight: set[asyncio.Task[None]] = set()

    def note_failure(self, account: str, error: BaseException) -> None:
        """The order path could not decide (see FailureNotes.note); never blocks."""
        self.failures.note(account, error)

    async def run(self) -> None:
        """Deliver until cancelled (then the sends in flight are cancelled too: their claims
        lapse and another round sends them again)."""
        try:
            while True:
                try:
                    busy = await self.run_once()
                except DB_DOWN as error:
                    if not self._database_down:
                        log.warning("alert delivery paused: database %s", type(error).__name__)
                    self._database_down = True
                    busy = False
                except Exception as error:  # the worker must outlive any one bad round
                    log.error("alert delivery round failed: %s", type(error).__name__)
                    busy = False
                else:
                    self._database_down = False
                if not busy:
                    await asyncio.sleep(self.settings.poll_interval_seconds)
        finally:
            for task in self._in_flight:
                task.cancel()
            await asyncio.gather(*self._in_flight, return_exceptions=True)

    async def run_once(self) -> bool:
        """One round: claim what is due, up to BATCH sends in flight, and start sending
        (a slow receiver holds its own sends only). Whether a full batch was claimed."""
        settings = self.settings
        room = BATCH - len(self._in_flight)
        async with self.pool.acquire() as conn:
            if len(self.failures):
                await self.failures.flush(conn, settings.risk_path_alert_interval_seconds)
            await outbox.fan_out(conn, self._targets, settings.email is not None)
            if room <= 0:
                return False
            lease = settings.send_timeout_seconds + _LEASE_MARGIN_SECONDS
            claimed = await outbox.claim(conn, room, lease)
            if not claimed:
                return False
            events = await outbox.load_events(conn, list({c.event_id for c in claimed}))
        for item in claimed:
            task = asyncio.create_task(self._deliver(item, render(events[item.event_id])))
            self._in_flight.add(task)
            task.add_done_callback(self._in_flight.discard)
        return len(claimed) == room

    async def _deliver(self, item: outbox.Claimed, message: Message) -> None:
        error = await self._send(item, message)
        try:
            async with self.pool.acquire() as conn:
                await self._record(conn, item, error)
        except DB_DOWN as failure:  # the claim lapses: sent again later (at least once)
            log.warning("alert %s outcome not recorded: %s", item.event_id, type(failure).__name__)

    async def _send(self, item: outbox.Claimed, message: Message) -> str | None:
        """None when delivered, else the error's kind."""
        timeout = self.settings.send_timeout_seconds
        try:
            if item.channel == "email":
                if self.settings.email is None:
                    return "not_configured"
                await email.send(self.settings.email, message, timeout)
            else:
                hook = self._hooks.get(item.target)
                if hook is None:
                    return "not_configured"
                await webhook.send(self.session, hook, message, timeout)
        except DeliveryFailed as failure:
            return failure.kind
        except Exception as error:  # a bug must cost this message an attempt, not the round
            return type(error).__name__
        return None

    async def _record(self, conn: Conn, item: outbox.Claimed, error: str | None) -> None:
        counter = self.metrics.alert_deliveries
        if error is None:
            await outbox.mark_delivered(conn, item)
            counter.labels(item.channel, "delivered").inc()
            return
        settings = self.settings
        retry_in: float | None = None
        if item.attempts < settings.max_attempts and error != "not_configured":
            retry_in = min(
                settings.retry_base_seconds * 2 ** (item.attempts - 1), settings.retry_max_seconds
            )
        await outbox.mark_failed(conn, item, error, retry_in)
        counter.labels(item.channel, "retry" if retry_in is not None else "failed").inc()
        log.warning(
            "alert %s by %s %s failed (attempt %d of %d, %s): %s",
            item.event_id,
            item.channel,
            item.target,
            item.attempts,
            settings.max_attempts,
            f"again in {retry_in:g}s" if retry_in is not None else "given up",
            error,
        )
