"""What an emergency stop does once committed: cancel the account's working orders that are
not risk-reducing (:mod:`gatekeeper.core.cancels`), and record each cancel
(:mod:`gatekeeper.adapters.stop_cancels`).

Always after the stop's transaction committed, in tasks this object keeps (never on an
order's path: nothing here blocks or fails an order). Which credentials:

- an automatic (daily-loss) stop: the credentials of the request that triggered it;
- a manual or global stop: the gatekeeper's own OAuth client for the account when one is
  configured (``[stops] broker_clients``; swept every ``sweep_interval_seconds``), else the
  first bot credential the broker confirms for the account after the stop
  (:meth:`StopActions.credential_confirmed`, called by the account-state source).

Across replicas, an account's cancels run under a transaction-scoped advisory lock, and a run
is recorded only when done: the replica that gets the lock re-reads what is still pending,
so two replicas never both cancel.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp

from gatekeeper.adapters import stop_cancels
from gatekeeper.adapters.account_payloads import AccountPayloads
from gatekeeper.adapters.broker_oauth import BrokerClients
from gatekeeper.adapters.broker_read import BrokerReadError, forwarded_headers, get_data
from gatekeeper.adapters.pg import DB_DOWN
from gatekeeper.core.cancels import CancelAction, CancelPlan, plan_cancels
from gatekeeper.core.payloads import snapshot_from_payloads
from gatekeeper.errors import GatekeeperError
from gatekeeper.orderpath.engine import Engine
from gatekeeper.orderpath.inputs import instrument_pairs, quote_pairs, risk_parameters

log = logging.getLogger(__name__)

# A bot's confirmed credential looks for pending cancels at most this often per account.
CHECK_INTERVAL_SECONDS = 1.0
_ORDER_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
Headers = Mapping[str, str]
CredentialSource = Callable[[], Awaitable[Headers | None]]


class StopActions:
    """Runs the cancels of committed stops; one per process (the proxy app's)."""

    def __init__(self, engine: Engine, session: aiohttp.ClientSession) -> None:
        self._engine = engine
        self._session = session
        settings = engine.settings
        self._upstream = settings.proxy.upstream_url
        self._stops = settings.stops
        self._clients = BrokerClients(session, settings)
        self._tasks: set[asyncio.Task[None]] = set()
        self._running: set[str] = set()  # accounts with a run in this process
        self._checked: dict[str, float] = {}  # account -> when a bot credential last looked
        self._oauth_failed: set[str] = set()
        self._delayed: dict[str, asyncio.TimerHandle] = {}

    # -- triggers (synchronous: they only schedule) ------------------------------------------

    def after_automatic_stop(self, account: str, client_headers: Headers) -> None:
        """The engine committed a daily-loss stop: cancel with the triggering request's
        credentials (or wait for a bot's when it carried none, as an operator's check)."""
        if client_headers.get("Authorization"):
            headers = dict(client_headers)
            self._spawn(account, "request", lambda: _ready(headers))
        else:
            self.after_manual_stop(account)

    def after_manual_stop(self, account: str) -> None:
        """An operator stopped ``account``: cancel now with the gatekeeper's own client if it
        has one for the account; else the next bot credential confirmed for it will."""
        if self._clients.configured(account):
            self._spawn(account, "gatekeeper_oauth", lambda: self._oauth(account))

    def after_global_stop(self) -> None:
        """Every account the gatekeeper has its own client for, now; the others as their
        bots' credentials are confirmed."""
        for account in self._clients.accounts():
            self.after_manual_stop(account)

    def credential_confirmed(self, account: str, client_headers: Headers) -> None:
        """The broker just let these credentials read ``account`` (a bot's, seen after any
        stop committed before this moment): run the account's pending cancels with them."""
        try:
            if self._clients.configured(account) and account not in self._oauth_failed:
                return  # the gatekeeper's own client serves this account (see the sweep)
            wait = CHECK_INTERVAL_SECONDS - (time.monotonic() - self._checked.get(account, 0.0))
            if wait > 0:  # looked just now: look again once the interval is over
                if account not in self._delayed:
                    self._delayed[account] = asyncio.get_running_loop().call_later(
                        wait, self._look_again, account, dict(client_headers)
                    )
                return
            if len(self._checked) > 4096:
                self._checked.clear()
            self._checked[account] = time.monotonic()
            headers = dict(client_headers)
            self._spawn(account, "bot", lambda: _ready(headers))
        except Exception as error:  # a hook on the state path: never let it fail a request
            log.error("stop actions: credential hook failed: %s", type(error).__name__)

    def _look_again(self, account: str, client_headers: Headers) -> None:
        self._delayed.pop(account, None)
        self.credential_confirmed(account, client_headers)

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Sweep for pending cancels of the accounts with the gatekeeper's own credentials
        (stops from the CLI or another replica reach them this way)."""
        if self._clients.accounts():
            task = asyncio.create_task(self._sweep())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        for handle in self._delayed.values():
            handle.cancel()
        self._delayed.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self._stops.sweep_interval_seconds)
            for account in self._clients.accounts():
                self.after_manual_stop(account)

    def _spawn(
        self, account: str, credential: stop_cancels.Credential, source: CredentialSource
    ) -> None:
        if account in self._running:
            return  # this process is at it already; what it misses the next trigger sees
        self._running.add(account)
        task = asyncio.create_task(self._guarded(account, credential, source))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda _: self._running.discard(account))

    async def _guarded(
        self, account: str, credential: stop_cancels.Credential, source: CredentialSource
    ) -> None:
        try:
            await self.run(account, credential, source)
        except asyncio.CancelledError:
            raise
        except DB_DOWN as error:
            log.warning("stop actions: database unavailable (%s)", type(error).__name__)
        except Exception as error:  # logged by type only: a message may quote a token
            log.error("stop actions for account %s failed: %s", account, type(error).__name__)

    async def _oauth(self, account: str) -> Headers | None:
        headers = await self._clients.headers(account)
        if headers is None:
            self._oauth_failed.add(account)  # bots' credentials may stand in
        else:
            self._oauth_failed.discard(account)
        return headers

    # -- one run -------------------------------------------------------------------------------

    async def run(
        self, account: str, credential: stop_cancels.Credential, source: CredentialSource
    ) -> bool:
        """Cancel ``account``'s working orders for every stop still waiting for it; False
        when there was nothing to do, another replica is at it, or the broker could not list
        the orders (nothing recorded: the next trigger tries again)."""
        async with self._engine.pool.acquire() as conn, conn.transaction():
            if not await stop_cancels.try_lock_cancels(conn, account):
                return False
            events = await stop_cancels.active_stop_events(conn, account)
            waiting = stop_cancels.pending(
                events, await stop_cancels.cancel_runs(conn, account, events)
            )
            if not waiting:
                return False
            headers = await source()
            if headers is None:
                return False
            try:
                plans = await self._plan(account, headers)
            except (GatekeeperError, BrokerReadError) as error:
                log.warning(
                    "stop actions: working orders of account %s could not be listed (%s)",
                    account,
                    type(error).__name__,
                )
                return False
            results = await asyncio.gather(*(self._cancel(account, p, headers) for p in plans))
            complete = all(r.outcome != "failed" for r in results)
            first = await stop_cancels.record_run(
                conn, account, waiting[0], credential, complete=complete
            )
            for result in results:
                await stop_cancels.record_cancel(conn, first, account, waiting[0], result)
            for event in waiting[1:]:
                await stop_cancels.record_run(
                    conn, account, event, credential, complete=complete, covered_by=first
                )
        counts = {o: sum(r.outcome == o for r in results) for o in ("cancelled", "failed", "kept")}
        log.warning(
            "emergency stop on account %s: working orders cancelled %d, failed %d, kept %d"
            " (risk-reducing); credentials: %s",
            account,
            counts["cancelled"],
            counts["failed"],
            counts["kept"],
            credential,
        )
        return True

    async def _plan(self, account: str, headers: Headers) -> tuple[CancelPlan, ...]:
        """The account's working orders, fresh from the broker, each judged by the core."""
        engine = self._engine
        timeout = aiohttp.ClientTimeout(total=self._stops.cancel_timeout_seconds)
        base = f"{self._upstream}/accounts/{account}"
        balances, positions, live = await asyncio.gather(
            *(
                get_data(self._session, base + path, headers, timeout, label=path.rsplit("/")[-1])
                for path in ("/balances", "/positions", "/orders/live")
            )
        )
        payloads = AccountPayloads(balances, _items(positions), _items(live), 0.0)
        pairs = instrument_pairs((), payloads)
        instruments = await engine.instruments.resolve(pairs, headers, payloads.positions)
        quotes = await engine.state.quotes(quote_pairs(pairs, instruments), headers)
        now = datetime.now(UTC)
        snapshot = snapshot_from_payloads(
            account_number=account,
            balances=balances,
            positions=payloads.positions,
            live_orders=payloads.live_orders,
            quotes=quotes,
            start_of_day_nlv=None,
            fetched_at=now,
            instruments=instruments,
        )
        return plan_cancels(snapshot, risk_parameters(engine.settings.risk), now)

    async def _cancel(
        self, account: str, plan: CancelPlan, headers: Headers
    ) -> stop_cancels.OrderCancel:
        if plan.action is CancelAction.KEEP:
            return stop_cancels.OrderCancel(plan.order_id, "kept", None, plan.reason)
        if plan.order_id is None or _ORDER_ID.fullmatch(plan.order_id) is None:
            return stop_cancels.OrderCancel(plan.order_id, "not_attempted", None, plan.reason)
        url = f"{self._upstream}/accounts/{account}/orders/{plan.order_id}"
        try:
            async with self._session.delete(
                url,
                headers=forwarded_headers(headers),
                timeout=aiohttp.ClientTimeout(total=self._stops.cancel_timeout_seconds),
                allow_redirects=False,
            ) as response:
                await response.read()
                status = response.status
        except TimeoutError:
            return stop_cancels.OrderCancel(
                plan.order_id, "failed", None, "timeout (maybe cancelled)"
            )
        except aiohttp.ClientError as error:
            return stop_cancels.OrderCancel(plan.order_id, "failed", None, type(error).__name__)
        if 200 <= status < 300:
            return stop_cancels.OrderCancel(plan.order_id, "cancelled", status, "")
        return stop_cancels.OrderCancel(plan.order_id, "failed", status, "the broker refused")


async def _ready(headers: Headers) -> Headers:
    return headers


def _items(data: Any) -> list[Mapping[str, Any]]:
    items = data.get("items") if isinstance(data, Mapping) else None
    if not isinstance(items, list):
        raise BrokerReadError("the broker's answer has no items")
    return [item for item in items if isinstance(item, Mapping)]


def attach_stop_actions(engine: Engine, session: aiohttp.ClientSession) -> StopActions:
    """Stop actions for ``engine``'s process, hooked to its automatic stops and to the
    credentials its state source confirms, and started (see StopActions.start)."""
    actions = StopActions(engine, session)
    engine.on_stop = actions.after_automatic_stop
    engine.state.on_confirmed = actions.credential_confirmed
    actions.start()
    return actions
