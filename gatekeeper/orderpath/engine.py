"""The risk engine with its I/O: inputs gathered (gatekeeper.orderpath.gather), the day's
ledger read under the account lock, the pure ``evaluate()``, the decision row committed.
Shared by the order path (gatekeeper.orderpath.handler), ``validate_trade`` and
``check-order``.

A placement or replace is decided in two Postgres round trips (sql/0031,
gatekeeper.adapters.held_decision): the account lock — held by every replica's decisions for
the account and by every protection change — and the forwarding locks are taken and the
inputs read in one; the decision row, which is also the reservation, is committed in the
other, whose commit lets the account lock go (sql/0036). The forwarding locks go once the
order was sent, so a manual stop commits only after orders decided before it were sent; no
two decisions of an account ever read the ledger without each other's row: two replicas
never jointly exceed a limit. A decision that triggers a stop writes the stop and its row in
one transaction. A dry-run reserves nothing: it takes no lock.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any
from uuid import UUID

import asyncpg

from gatekeeper.adapters import decisions as db
from gatekeeper.adapters import held_decision
from gatekeeper.adapters.account_state import StateSource
from gatekeeper.adapters.day_start import DayStart, DayStartSource
from gatekeeper.adapters.held_decision import HeldLocks
from gatekeeper.adapters.instruments import InstrumentSource
from gatekeeper.adapters.pg import DB_DOWN
from gatekeeper.core import (
    EvaluationContext,
    Limits,
    RiskParameters,
    evaluate,
    parse_order,
)
from gatekeeper.core.payloads import PayloadMemo
from gatekeeper.errors import (
    DatabaseUnavailable,
    DeadlineExceeded,
    DuplicateOrder,
    RiskPathUnavailable,
)
from gatekeeper.orderpath.automatic_stop import trigger_stops
from gatekeeper.orderpath.decided import DecisionHook, Evaluated, OrderRequest, Result
from gatekeeper.orderpath.gather import Gathered, gather, with_in_flight
from gatekeeper.orderpath.inputs import (
    default_limits,
    limits_of,
    nlv_of,
    order_ids,
    risk_parameters,
    state_fetched_at,
    under_global_stop,
)
from gatekeeper.orderpath.outcome_writes import OutcomeWrites
from gatekeeper.orderpath.record import decision_row, duplicate_row
from gatekeeper.settings import Settings

log = logging.getLogger(__name__)

# Reads again at most this often when the global stop changes between read and record.
_GLOBAL_STOP_RETRIES = 3


class Engine:
    """Decides order requests; one per listener, sharing its pool and state source."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        state: StateSource,
        settings: Settings,
        instruments: InstrumentSource,
        day_start: DayStartSource,
    ) -> None:
        self.pool = pool
        self.state = state
        self.settings = settings
        self.instruments = instruments
        self.day_start = day_start
        # Told (account, the request's headers) after a decision that triggered a stop
        # committed: gatekeeper.stop_actions cancels the working orders. Never awaited.
        self.on_stop: Callable[[str, Mapping[str, str]], None] | None = None
        # Enqueues the alerts a decision raises (gatekeeper.alerts.triggers): after its row
        # (in its transaction when it triggered a stop).
        self.after_decision: DecisionHook | None = None
        # Background releases of held locks (gatekeeper.adapters.held_decision).
        self._releases: set[Any] = set()
        # Outcome rows written after their answers were relayed: each account's next
        # decision waits for its own (gatekeeper.orderpath.outcome_writes).
        self.outcomes = OutcomeWrites()
        # The state cache's payloads are never changed in place: each is parsed once.
        self._parsed = PayloadMemo()
        # The configured defaults and risk parameters, built once per [risk] settings.
        self._from_risk: tuple[object, Limits, RiskParameters] | None = None

    async def aclose(self) -> None:
        """Wait for the locks being released (at shutdown)."""
        await self.outcomes.aclose()
        if self._releases:
            await asyncio.gather(*self._releases, return_exceptions=True)

    async def decide(self, request: OrderRequest, decision_id: UUID, started: float) -> Result:
        """Evaluate and record one request (see the module docstring). Raises
        RiskPathUnavailable subclasses, OrderParseError, AccountStateInvalid or
        BrokerAuthFailed (the broker refused the request's credentials: nothing recorded)."""
        gathered = await gather(
            self.state,
            self.instruments,
            account=request.account,
            client_headers=request.client_headers,
            orders=request.orders,
            replaces_order_id=request.replaces_order_id,
            operator_check=request.operator_check,
        )
        request.remaining()  # the broker's state may have taken the order's time
        try:
            # The start of the day (broker's snapshot, deposits) for this host's New York date,
            # gathered again should the database's be another (docs/order-path.md).
            return await self.day_start.within_trading_day(
                request.account,
                request.client_headers,
                lambda start: self._decide(request, gathered, decision_id, started, start),
                operator_check=request.operator_check,
            )
        except DB_DOWN as error:
            raise DatabaseUnavailable(
                f"database_unavailable: the risk database cannot be reached"
                f" ({type(error).__name__})"
            ) from None

    async def _connection(self, request: OrderRequest) -> Any:
        try:
            return await self.pool.acquire(timeout=request.remaining())
        except TimeoutError:
            pool = self.pool
            if pool.get_size() >= pool.get_max_size() and pool.get_idle_size() == 0:
                # Every connection was busy deciding other orders: this one waited its turn
                # past its deadline (when it was connecting, the database is unreachable).
                request.remaining()
            raise

    async def _decide(
        self,
        request: OrderRequest,
        gathered: Gathered,
        decision_id: UUID,
        started: float,
        start: DayStart,
    ) -> Result:
        await self.outcomes.written(request)
        if request.dry_run:
            return await self._decide_unlocked(request, gathered, decision_id, started, start)
        conn = await self._connection(request)
        held = HeldLocks(self.pool, conn, request.account, self._releases)
        try:
            result = await self._decide_held(held, request, gathered, decision_id, started, start)
        except BaseException:
            held.release()
            raise
        held.decided()
        if not result.decision.allowed:
            held.release()
            return result
        return replace(result, forwarding=held)

    async def _read_held(
        self, held: HeldLocks, request: OrderRequest, gathered: Gathered, start: DayStart
    ) -> db.LockedInputs:
        identity = request.identity
        try:
            read = await held_decision.read(
                held.conn,
                request.account,
                nlv_of(gathered.payloads.balances),
                seen_order_ids=order_ids(gathered.payloads),
                day=start.day,
                net_deposits=start.net_deposits,
                state_fetched_at=state_fetched_at(gathered.payloads),
                client_identifiers=identity.client_identifiers if identity else (),
                fingerprint=identity.fingerprint if identity else "",
                duplicate_window_seconds=self.settings.risk.duplicate_window_seconds,
                wait_at_most=request.remaining(),
            )
        except asyncpg.LockNotAvailableError:
            raise DeadlineExceeded(
                "deadline_exceeded: the account lock was not free before the order's"
                " deadline; it was not forwarded"
            ) from None
        held.account_holds += 1
        return read

    async def _decide_held(
        self,
        held: HeldLocks,
        request: OrderRequest,
        gathered: Gathered,
        decision_id: UUID,
        started: float,
        start: DayStart,
    ) -> Result:
        conn = held.conn
        read = await self._read_held(held, request, gathered, start)
        for _ in range(_GLOBAL_STOP_RETRIES):
            if read.duplicate is not None:
                await db.insert_decision(conn, duplicate_row(request, read, decision_id, started))
                raise DuplicateOrder(decision_id, read.duplicate)
            assert read.inputs is not None  # noqa: S101 - no duplicate: inputs were read
            done = await self._evaluate(request, gathered, read.inputs, decision_id, started)
            if done.decision.allowed:
                request.remaining()  # never commit an allow that can no longer be forwarded
            if done.decision.trigger_stop is not None:
                async with conn.transaction():
                    await trigger_stops(conn, request.account, done.decision, self.settings)
                    await db.insert_decision(conn, done.row)
                    await self._after(conn, request, done)
                return self._result(request, done)
            recorded = await held_decision.record(
                conn,
                done.row,
                global_stop_mode=read.inputs.global_stop_mode,
                wait_at_most=request.remaining(),
            )
            if recorded:
                held.account_holds -= 1  # the commit let it go
                await self._after(conn, request, done)
                return self._result(request, done)
            read = await self._read_held(held, request, gathered, start)  # the stop moved
        raise RiskPathUnavailable(
            "risk_check_unavailable: the global emergency stop kept changing while the order"
            " was decided; it was not forwarded"
        )

    async def _decide_unlocked(
        self,
        request: OrderRequest,
        gathered: Gathered,
        decision_id: UUID,
        started: float,
        start: DayStart,
    ) -> Result:
        """A dry-run: it reserves nothing, so it takes no lock and holds nothing."""
        async with self.pool.acquire(timeout=request.remaining()) as conn:
            inputs = await db.decision_inputs(
                conn,
                request.account,
                nlv_of(gathered.payloads.balances),
                hold=False,
                seen_order_ids=order_ids(gathered.payloads),
                day=start.day,
                net_deposits=start.net_deposits,
                state_fetched_at=state_fetched_at(gathered.payloads),
            )
            done = await self._evaluate(request, gathered, inputs, decision_id, started)
            if done.decision.trigger_stop is not None:
                async with conn.transaction():
                    await trigger_stops(conn, request.account, done.decision, self.settings)
                    await db.insert_decision(conn, done.row)
                    await self._after(conn, request, done)
            else:
                await db.insert_decision(conn, done.row)
                await self._after(conn, request, done)
        return self._result(request, done)

    async def _evaluate(
        self,
        request: OrderRequest,
        gathered: Gathered,
        inputs: db.DecisionInputs,
        decision_id: UUID,
        started: float,
    ) -> Evaluated:
        risk = self.settings.risk
        payloads = gathered.payloads
        now, day = inputs.now, inputs.trading_day
        reserved = inputs.reservations
        defaults, params = self._risk_inputs()
        limits = tuple(limits_of(p) for p in inputs.protections)
        if not limits and risk.unknown_account_policy == "defaults":
            limits = (defaults,)
        limits = under_global_stop(limits, inputs.global_stop_mode)
        snapshot = gathered.snapshot(request.account, inputs, self._parsed)
        in_flight = [parse_order(item) for item in reserved.in_flight]
        if in_flight:
            snapshot = await with_in_flight(
                self.state,
                self.instruments,
                request.client_headers,
                snapshot,
                in_flight,
                payloads,
            )
        context = EvaluationContext(
            snapshot=snapshot,
            protections=limits,
            now=now,
            trades_today=reserved.trades_today,
            dry_run=request.dry_run,
            in_flight=in_flight,
            replaces_order_id=request.replaces_order_id,
            max_state_age=timedelta(seconds=risk.max_state_age_seconds),
            params=params,
        )
        decision = evaluate(gathered.orders, context)
        row = decision_row(
            account=request.account,
            route_kind=request.route_kind,
            replaces_order_id=request.replaces_order_id,
            identity=request.identity,
            decision=decision,
            decision_id=decision_id,
            day=day,
            started=started,
            orders=gathered.orders,
            summary=request.summary,
        )
        return Evaluated(decision, limits, reserved.trades_today, row)

    def _risk_inputs(self) -> tuple[Limits, RiskParameters]:
        risk = self.settings.risk
        if self._from_risk is None or self._from_risk[0] is not risk:
            self._from_risk = (risk, default_limits(risk), risk_parameters(risk))
        return self._from_risk[1], self._from_risk[2]

    async def _after(self, conn: Any, request: OrderRequest, done: Evaluated) -> None:
        if self.after_decision is not None:
            day = done.row.trading_day
            await self.after_decision(
                conn, request, done.decision, done.limits, done.trades_before, day
            )

    def _result(self, request: OrderRequest, done: Evaluated) -> Result:
        decision = done.decision
        if decision.trigger_stop is not None and self.on_stop is not None:
            self.on_stop(request.account, request.client_headers)  # committed: cancel orders
        counted = decision.trade_count if decision.allowed else 0
        return Result(
            decision,
            done.row.decision_id,
            done.row.trading_day,
            done.limits,
            done.row.detail,
            done.trades_before + counted,
        )
