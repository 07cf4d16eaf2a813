"""The risk engine with its I/O: account state in, one locked Postgres transaction, a decision
out. Shared by the order path (gatekeeper.orderpath.handler), ``validate_trade`` and
``check-order``.

Inside the transaction, under a per-account advisory lock held by every replica, the engine
re-reads the protections (and so the emergency stop), counts today's trades and the orders in
flight from Postgres (never from Redis), runs the pure ``evaluate()`` and appends the decision
row, which is also the reservation. Two replicas can therefore never jointly exceed a limit.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg

from gatekeeper.adapters import decisions as db
from gatekeeper.adapters import outcomes, stops
from gatekeeper.adapters import protections as store
from gatekeeper.adapters.account_state import AccountPayloads, StateSource
from gatekeeper.adapters.day_start import DayStart, DayStartSource
from gatekeeper.adapters.instruments import InstrumentSource
from gatekeeper.adapters.pg import DB_DOWN
from gatekeeper.core import (
    AccountSnapshot,
    AccountStateInvalid,
    ComplexOrder,
    Decision,
    EvaluationContext,
    InvalidOrder,
    Limits,
    Order,
    OrderPatch,
    evaluate,
    parse_order,
    snapshot_from_payloads,
    trading_day,
)
from gatekeeper.core.holdings import contained_orders
from gatekeeper.core.instruments import Instrument
from gatekeeper.core.order import to_decimal
from gatekeeper.core.payloads import quote_from_payload
from gatekeeper.core.snapshot import StartOfDaySource
from gatekeeper.core.symbols import InstrumentType
from gatekeeper.errors import DatabaseUnavailable, DeadlineExceeded, DuplicateOrder
from gatekeeper.order_identity import OrderIdentity
from gatekeeper.orderpath.inputs import (
    default_limits,
    instrument_pairs,
    limits_of,
    order_ids,
    quote_pairs,
    replaced_order,
    risk_parameters,
    under_global_stop,
)
from gatekeeper.orderpath.record import decision_row, identity_detail
from gatekeeper.settings import Settings

log = logging.getLogger(__name__)

SYSTEM_ACTOR = stops.SYSTEM_ACTOR
SYSTEM_USER_EMAIL = stops.SYSTEM_USER_EMAIL


@dataclass(frozen=True)
class OrderRequest:
    """One request to decide: the order(s) (or a replace patch) for an account."""

    account: str
    route_kind: str
    orders: Order | ComplexOrder | OrderPatch
    dry_run: bool
    client_headers: Mapping[str, str]
    replaces_order_id: str | None = None
    # An operator's check (validate_trade, check-order): given no broker credentials, it may
    # be decided on the cached state (the caller is authorized for the account elsewhere).
    operator_check: bool = False
    # A placement's external-identifiers and fingerprint (None for dry-runs and replaces):
    # a retry of an unresolved or accepted one is answered from it (DuplicateOrder).
    identity: OrderIdentity | None = None
    # time.perf_counter() past which the order must not be forwarded (None: no deadline).
    deadline: float | None = None
    # The order in a few fields (gatekeeper.core.summary), kept on its decision row.
    summary: Mapping[str, object] | None = None

    def remaining(self) -> float | None:
        """Seconds left before the deadline; DeadlineExceeded when none are."""
        if self.deadline is None:
            return None
        left = self.deadline - time.perf_counter()
        if left <= 0:
            raise DeadlineExceeded(
                "deadline_exceeded: the order waited in the gatekeeper past its deadline"
                " (risk.order_deadline_seconds); it was not forwarded"
            )
        return left


@dataclass(frozen=True)
class Result:
    """The decision, its id and trading day, the protections it applied, and the account's
    trades today with this decision (for the per-account gauges)."""

    decision: Decision
    decision_id: UUID
    trading_day: date
    limits: tuple[Limits, ...]
    trades_today: int = 0


# (connection in the decision's transaction, request, decision, protections applied, trades
# today before this decision, trading day)
DecisionHook = Callable[
    [Any, OrderRequest, Decision, tuple[Limits, ...], int, date], Awaitable[None]
]


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
        # Enqueues the alerts a decision raises, in its transaction (gatekeeper.alerts.triggers).
        self.after_decision: DecisionHook | None = None

    async def decide(self, request: OrderRequest, decision_id: UUID, started: float) -> Result:
        """Evaluate and record one request (see the module docstring). Raises
        RiskPathUnavailable subclasses, OrderParseError, AccountStateInvalid or
        BrokerAuthFailed (the broker refused the request's credentials: nothing recorded).

        Gathers, in order: the account state; the instruments of the order's legs, the
        positions and the working orders (group, multiplier, underlying); the quotes of those
        instruments and of their underlyings; the start of the trading day (the broker's
        beginning-of-day snapshot, the day's deposits). Then decides under the account lock."""
        payloads = await self.state.account(
            request.account, request.client_headers, operator_check=request.operator_check
        )
        orders: Order | ComplexOrder
        if isinstance(request.orders, OrderPatch):
            if request.replaces_order_id is None:
                raise InvalidOrder("invalid_order: a replace needs the id of the order it replaces")
            orders = replaced_order(payloads, request.replaces_order_id, request.orders)
        else:
            orders = request.orders
        pairs = instrument_pairs(contained_orders(orders), payloads)
        instruments = await self.instruments.resolve(
            pairs, request.client_headers, payloads.positions
        )
        quotes = await self.state.quotes(
            quote_pairs(pairs, instruments), request.client_headers, payloads, request.account
        )
        request.remaining()  # the broker's state may have taken the order's time
        try:
            # The start of the day (broker's snapshot, deposits) for this host's New York date,
            # gathered again should the database's be another (docs/order-path.md).
            return await self.day_start.within_trading_day(
                request.account,
                request.client_headers,
                lambda start: self._decide_locked(
                    request, orders, payloads, quotes, instruments, decision_id, started, start
                ),
                operator_check=request.operator_check,
            )
        except DB_DOWN as error:
            raise DatabaseUnavailable(
                f"database_unavailable: the risk database cannot be reached"
                f" ({type(error).__name__})"
            ) from None

    async def _decide_locked(
        self,
        request: OrderRequest,
        orders: Order | ComplexOrder,
        payloads: AccountPayloads,
        quotes: Sequence[Mapping[str, Any]],
        instruments: Mapping[str, Instrument],
        decision_id: UUID,
        started: float,
        start: DayStart,
    ) -> Result:
        first: outcomes.FirstSubmission | None = None
        try:
            acquiring = self.pool.acquire(timeout=request.remaining())
            conn = await acquiring.__aenter__()
        except TimeoutError:
            pool = self.pool
            if pool.get_size() >= pool.get_max_size() and pool.get_idle_size() == 0:
                # Every connection was busy deciding other orders: this one waited its turn
                # past its deadline (when it was connecting, the database is unreachable).
                request.remaining()
            raise
        try:
            async with conn.transaction():
                # A dry-run reserves nothing: no need to serialize it or hold the protections.
                if not request.dry_run:
                    # Its own statement: the reads below take their snapshot after the lock.
                    await _lock(conn, request)
                    first = await self._duplicate_of(conn, request, decision_id, started)
                if first is None:
                    result = await self._evaluate_locked(
                        conn,
                        request,
                        orders,
                        payloads,
                        quotes,
                        instruments,
                        decision_id,
                        started,
                        start,
                    )
        finally:
            await acquiring.__aexit__(None, None, None)
        if first is not None:  # its row is committed: answer it from the first
            raise DuplicateOrder(decision_id, first)
        decision = result.decision
        if decision.trigger_stop is not None and self.on_stop is not None:
            self.on_stop(request.account, request.client_headers)  # committed: cancel orders
        return result

    async def _duplicate_of(
        self, conn: Any, request: OrderRequest, decision_id: UUID, started: float
    ) -> outcomes.FirstSubmission | None:
        """The first submission this one repeats (see gatekeeper.order_identity); if any, the
        retry's own decision row (reject ``duplicate_order``, not counted) is appended."""
        identity = request.identity
        if identity is None:
            return None
        first = await outcomes.find_duplicate(
            conn,
            request.account,
            identity.client_identifiers,
            identity.fingerprint,
            self.settings.risk.duplicate_window_seconds,
        )
        if first is None:
            return None
        message = (
            f"duplicate_order: this order repeats decision {first.decision_id}"
            f" ({first.outcome or 'in flight'}); it is not forwarded again"
        )
        detail = {
            "verdict": "reject",
            "code": "duplicate_order",
            "message": message,
            "duplicate_of": str(first.decision_id),
            "first_outcome": first.outcome or "pending",
            "broker_order_id": first.broker_order_id,
            **identity_detail(identity),
            **({"summary": dict(request.summary)} if request.summary else {}),
        }
        now = await db.database_now(conn)
        await db.insert_decision(
            conn,
            db.DecisionRow(
                decision_id=decision_id,
                account_id=request.account,
                route_kind=request.route_kind,
                verdict="reject",
                codes=["duplicate_order"],
                notes=["duplicate_of"],
                message=message,
                detail=detail,
                trading_day=trading_day(now),
                trade_count=0,
                reserved_orders=[],
                replaces_order_id=request.replaces_order_id,
                latency_ms=(time.perf_counter() - started) * 1000,
            ),
        )
        return first

    async def _evaluate_locked(
        self,
        conn: Any,
        request: OrderRequest,
        orders: Order | ComplexOrder,
        payloads: AccountPayloads,
        quotes: Sequence[Mapping[str, Any]],
        instruments: Mapping[str, Instrument],
        decision_id: UUID,
        started: float,
        start: DayStart,
    ) -> Result:
        risk = self.settings.risk
        inputs = await db.decision_inputs(
            conn,
            request.account,
            _nlv(payloads.balances),
            hold=not request.dry_run,
            seen_order_ids=order_ids(payloads),
            day=start.day,
            net_deposits=start.net_deposits,
        )
        now, day = inputs.now, inputs.trading_day
        fetched_at = now - timedelta(seconds=payloads.age_seconds)
        sod, reserved = inputs.start_of_day_nlv, inputs.reservations
        limits = tuple(limits_of(p) for p in inputs.protections)
        if not limits and risk.unknown_account_policy == "defaults":
            limits = (default_limits(risk),)
        limits = under_global_stop(limits, inputs.global_stop_mode)
        snapshot = snapshot_from_payloads(
            account_number=request.account,
            balances=payloads.balances,
            positions=payloads.positions,
            live_orders=payloads.live_orders,
            quotes=quotes,
            start_of_day_nlv=sod,
            fetched_at=fetched_at,
            trading_status=payloads.trading_status,
            instruments=instruments,
        )
        snapshot = replace(
            snapshot,
            start_of_day_source=StartOfDaySource(inputs.start_of_day_source)
            if inputs.start_of_day_source
            else None,
            day_net_deposits=inputs.net_deposits,
        )
        in_flight = [parse_order(item) for item in reserved.in_flight]
        if in_flight:
            snapshot = await self._with_in_flight(request, snapshot, in_flight, payloads)
        context = EvaluationContext(
            snapshot=snapshot,
            protections=limits,
            now=now,
            trades_today=reserved.trades_today,
            dry_run=request.dry_run,
            in_flight=in_flight,
            replaces_order_id=request.replaces_order_id,
            max_state_age=timedelta(seconds=risk.max_state_age_seconds),
            params=risk_parameters(risk),
        )
        decision = evaluate(orders, context)
        if decision.allowed and not request.dry_run:
            request.remaining()  # never commit an allow that can no longer be forwarded
        if decision.trigger_stop is not None:
            await self._trigger_stops(conn, request.account, decision)
        await db.insert_decision(
            conn,
            decision_row(
                account=request.account,
                route_kind=request.route_kind,
                replaces_order_id=request.replaces_order_id,
                identity=request.identity,
                decision=decision,
                decision_id=decision_id,
                day=day,
                started=started,
                orders=orders,
                summary=request.summary,
            ),
        )
        if self.after_decision is not None:
            trades = reserved.trades_today
            await self.after_decision(conn, request, decision, limits, trades, day)
        counted = decision.trade_count if decision.allowed else 0
        return Result(decision, decision_id, day, limits, reserved.trades_today + counted)

    async def _with_in_flight(
        self,
        request: OrderRequest,
        snapshot: AccountSnapshot,
        in_flight: Sequence[Order],
        payloads: AccountPayloads,
    ) -> AccountSnapshot:
        """The snapshot with the instruments and quotes of in-flight orders it lacks (read
        under the lock, they were not known before it; usually all cached already)."""
        plain = (InstrumentType.EQUITY, InstrumentType.CRYPTOCURRENCY)
        pairs = list(
            dict.fromkeys(
                (leg.instrument_type.value, leg.symbol)
                for order in in_flight
                for leg in order.legs
                if leg.symbol not in snapshot.quotes
                or (leg.instrument_type not in plain and leg.symbol not in snapshot.instruments)
            )
        )
        if not pairs:
            return snapshot
        found = await self.instruments.resolve(pairs, request.client_headers, payloads.positions)
        instruments = {**found, **snapshot.instruments}
        wanted = [p for p in quote_pairs(pairs, found) if p[1] not in snapshot.quotes]
        quotes = await self.state.quotes(wanted, request.client_headers)
        extra = {q.symbol: q for q in (quote_from_payload(item) for item in quotes)}
        return replace(snapshot, instruments=instruments, quotes={**extra, **snapshot.quotes})

    async def _trigger_stops(self, conn: Any, account: str, decision: Decision) -> None:
        trigger = decision.trigger_stop
        assert trigger is not None  # noqa: S101 - checked by the caller
        for pid in trigger.protection_ids:
            if pid.isdigit():
                protection_id = int(pid)
            else:
                # The configured defaults have no row to hold a stop: make them one, owned by
                # the system user, so the stop persists until an admin clears it.
                protection_id = await self._default_protection_row(conn, account)
            # automatic: reduce_only unless the protection says halt, so the account can
            # still be flattened.
            stopped, changed = await store.trigger_emergency_stop(
                conn,
                protection_id,
                None,
                reason=trigger.reason,
                triggered_by=trigger.actor,
                mode=None,
                actor=SYSTEM_ACTOR,
                automatic=True,
            )
            if changed:  # a dry-run does not hold the account lock: another may have won
                log.warning(
                    "emergency stop triggered on protection %s (mode %s): %s",
                    protection_id,
                    stopped.emergency_stop_active_mode,
                    trigger.reason,
                )

    async def _default_protection_row(self, conn: Any, account: str) -> int:
        """The system user's protection on ``account`` with the configured default limits
        and stop mode (unset by default: its automatic stop is reduce_only)."""
        await db.lock_account(conn, account)  # dry-runs come here without the account lock
        return await stops.system_protection(
            conn, account, self.settings.risk, self.settings.admin.default_emergency_stop_mode
        )


def _nlv(balances: Mapping[str, Any]) -> Decimal:
    try:
        return to_decimal(balances.get("net-liquidating-value"))
    except ValueError:
        raise AccountStateInvalid("broker balances lack a net-liquidating-value") from None


async def _lock(conn: Any, request: OrderRequest) -> None:
    """The account lock, waited for until the order's deadline at most."""
    try:
        await db.lock_account(conn, request.account, wait_at_most=request.remaining())
    except asyncpg.LockNotAvailableError:
        request.remaining()
        raise DeadlineExceeded(
            "deadline_exceeded: the account lock was not free before the order's deadline;"
            " it was not forwarded"
        ) from None
