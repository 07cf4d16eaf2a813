"""Resolve every order whose broker answer was lost (docs/order-path.md, "Unknown outcomes").

An allowed order whose forward timed out or broke off is recorded ``unknown``; a replica that
died between its decision and the broker's answer leaves a decision with no outcome at all.
Both still count as trades and in flight. One reconciler per replica (a task of the proxy
app's cleanup context) claims such decisions with a lease in Postgres
(``order_reconcile_leases``: two replicas never look up one order at once), lists the
account's orders of the day at the broker (``GET /accounts/{a}/orders/live``, every status)
and finds the order by its broker id, else by its ``external-identifier``
(gatekeeper.order_identity). Found: ``accepted`` with the broker's order id is appended. Not
found ``reconcile_not_placed_after_seconds`` after it was sent: ``not_placed``.

Credentials: the gatekeeper's own OAuth client for the account when configured
(``[stops] broker_clients``), else the last bot credential the broker confirmed for the
account in this process (kept in memory only, never stored). Without one, the order stays
unresolved (the status route lists it) until a bot of the account is seen.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
from collections.abc import Mapping
from typing import Any
from uuid import uuid4

import aiohttp
import asyncpg

from gatekeeper.adapters import outcomes
from gatekeeper.adapters.broker_oauth import BrokerClients
from gatekeeper.adapters.broker_read import CLIENT_HEADERS, BrokerReadError, get_data
from gatekeeper.adapters.pg import DB_DOWN
from gatekeeper.errors import BrokerAuthFailed
from gatekeeper.settings import Settings
from gatekeeper.waits import wait_event

log = logging.getLogger(__name__)
# How often each replica deletes the retry lookup's keys older than yesterday (sql/0034).
PRUNE_EVERY_SECONDS = 3600.0

Headers = Mapping[str, str]


class Reconciler:
    """Resolves unresolved orders; one per process (the proxy app's)."""

    def __init__(
        self, pool: asyncpg.Pool, session: aiohttp.ClientSession, settings: Settings
    ) -> None:
        self._pool = pool
        self._session = session
        self._settings = settings
        self._clients = BrokerClients(session, settings)
        self._credentials: dict[str, dict[str, str]] = {}
        self._holder = f"{socket.gethostname()}:{os.getpid()}:{uuid4().hex[:8]}"
        self.wake = asyncio.Event()

    def credential_seen(self, account: str, client_headers: Headers) -> None:
        """The broker just let these credentials read ``account``: keep them (in memory) to
        look the account's orders up."""
        if client_headers.get("Authorization"):
            self._credentials[account] = {
                name: client_headers[name] for name in CLIENT_HEADERS if name in client_headers
            }

    async def _headers(self, account: str) -> Headers | None:
        if self._clients.configured(account):
            headers = await self._clients.headers(account)
            if headers is not None:
                return headers
        return self._credentials.get(account)

    async def run(self) -> None:
        """Reconcile every ``reconcile_interval_seconds``, or at once when woken; prune the
        retry lookup's old keys at the first pass and then hourly."""
        interval = self._settings.risk.reconcile_interval_seconds
        pruned_at: float | None = None
        while True:
            self.wake.clear()
            try:
                if pruned_at is None or time.monotonic() - pruned_at >= PRUNE_EVERY_SECONDS:
                    await self.prune()
                    pruned_at = time.monotonic()
                await self.run_once()
            except DB_DOWN as error:
                log.warning("reconciler: database unavailable (%s)", type(error).__name__)
            except asyncpg.PostgresError as error:
                log.error("reconciler: %s", type(error).__name__)
            except Exception as error:  # it must outlive any one bad pass
                log.error("reconciler: pass failed: %s", type(error).__name__)
            await wait_event(self.wake, interval)

    async def prune(self) -> int:
        """Delete the retry lookup's keys no decision can repeat any more (sql/0034); how
        many."""
        async with self._pool.acquire() as conn:
            count: int = await conn.fetchval("SELECT prune_order_submission_keys()")
        if count:
            log.info("reconciler: pruned %d order submission keys older than yesterday", count)
        return count

    async def run_once(self) -> int:
        """One pass; returns how many orders it resolved."""
        risk = self._settings.risk
        async with self._pool.acquire() as conn:
            items = await outcomes.claim_unresolved(
                conn,
                self._holder,
                grace_seconds=risk.reconcile_grace_seconds,
                lease_seconds=max(10.0, 5 * risk.reconcile_interval_seconds),
            )
        by_account: dict[str, list[outcomes.Unresolved]] = {}
        for item in items:
            by_account.setdefault(item.account_id, []).append(item)
        resolved = 0
        for account, pending in by_account.items():
            resolved += await self._reconcile_account(account, pending)
        return resolved

    async def _reconcile_account(self, account: str, pending: list[outcomes.Unresolved]) -> int:
        headers = await self._headers(account)
        if headers is None:
            return 0  # no credential yet: stays unresolved, the lease lapses
        url = f"{self._settings.proxy.upstream_url}/accounts/{account}/orders/live"
        timeout = aiohttp.ClientTimeout(total=self._settings.proxy.total_timeout_seconds)
        try:
            data = await get_data(self._session, url, headers, timeout, label="orders/live")
        except BrokerAuthFailed:
            self._credentials.pop(account, None)
            return 0
        except BrokerReadError as error:
            log.warning("reconciler: orders of %s unreadable (%s)", account, error.what)
            return 0
        items = data.get("items") if isinstance(data, Mapping) else None
        orders = [o for o in items or [] if isinstance(o, Mapping)]
        resolved = 0
        for item in pending:
            resolved += await self._resolve(item, orders)
        return resolved

    async def _resolve(self, item: outcomes.Unresolved, orders: list[Mapping[str, Any]]) -> int:
        found, how = _find(item, orders)
        async with self._pool.acquire() as conn:
            if found is not None:
                broker_id = found.get("complex-order-id") or found.get("id")
                body = None if found.get("complex-order-id") else {"data": {"order": found}}
                done = await outcomes.resolve(
                    conn,
                    item,
                    "accepted",
                    broker_order_id=None if broker_id is None else str(broker_id),
                    answer_body=None if body is None else json.dumps(body),
                    resolution=how,
                )
                outcome = "accepted"
            elif not item.external_identifiers and item.broker_order_id is None:
                return 0  # recorded before identifiers (sql/0029): absence proves nothing
            elif item.age_seconds > self._settings.risk.reconcile_not_placed_after_seconds:
                done = await outcomes.resolve(
                    conn,
                    item,
                    "not_placed",
                    broker_order_id=None,
                    answer_body=None,
                    resolution="not_found",
                )
                outcome = "not_placed"
            else:
                return 0
        if done:
            log.info(
                "reconciled decision %s of %s: %s (%s)",
                item.decision_id,
                item.account_id,
                outcome,
                how or "not_found",
            )
        return int(done)


def _find(
    item: outcomes.Unresolved, orders: list[Mapping[str, Any]]
) -> tuple[Mapping[str, Any] | None, str]:
    if item.broker_order_id is not None:
        for order in orders:
            if str(order.get("id")) == item.broker_order_id:
                return order, "broker_order_id"
    wanted = set(item.external_identifiers)
    for order in orders:
        if order.get("external-identifier") in wanted:
            return order, "external_identifier"
    return None, ""
