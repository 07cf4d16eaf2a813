"""The order path, one request at a time, in the order its stages run:

1. the request (gatekeeper.orderpath.request): target and headers validated, body read and
   parsed into typed orders;
2. the decision (gatekeeper.orderpath.engine): inputs gathered (account state, instruments,
   quotes, the day's start: gatekeeper.orderpath.inputs), then, under the account lock, the
   day's ledger read, the pure ``evaluate()`` run and the decision row committed;
3. the answer: a rejection in TastyTrade's format (gatekeeper.orderpath.answers), or the
   checked bytes forwarded by the broker client (gatekeeper.adapters.broker) and the
   broker's outcome recorded once the answer is relayed (gatekeeper.orderpath.outcome_writes);
   a request refused before any decision is recorded and answered by
   gatekeeper.orderpath.undecided;
4. the report: one RISK_DECISION line, the counters and the account's gauges
   (gatekeeper.orderpath.report), at the event loop's next turn for a decision.

Fails closed: nothing is forwarded unless the engine allowed it and its decision row is
committed; every answer on an order route has a decision row (when Postgres answers).
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from uuid import UUID, uuid4

import asyncpg
from aiohttp import web

from gatekeeper.adapters import decisions as db
from gatekeeper.adapters.broker import BrokerClient, UpstreamAnswer
from gatekeeper.adapters.refusal_rows import RefusalRows
from gatekeeper.alerts.worker import AlertWorker
from gatekeeper.arrival import queued_seconds
from gatekeeper.core import AccountStateInvalid, Route, RouteKind
from gatekeeper.core.summary import order_summary
from gatekeeper.errors import (
    BadRequest,
    BrokerAuthFailed,
    DuplicateOrder,
    GatekeeperError,
    Overloaded,
    RequestTimeout,
    RiskPathUnavailable,
    UpstreamDisconnected,
    UpstreamTimeout,
    UpstreamUnavailable,
    error_response,
)
from gatekeeper.metrics import Metrics
from gatekeeper.order_identity import identify
from gatekeeper.orderpath.answers import (
    DECISION_HEADER,
    Failure,
    deadline_passed_after_decision,
    duplicate_answer,
    risk_rejection,
    unsupported_route,
)
from gatekeeper.orderpath.decided import OrderRequest, Result
from gatekeeper.orderpath.engine import Engine
from gatekeeper.orderpath.record import record_outcome
from gatekeeper.orderpath.report import report, report_decision
from gatekeeper.orderpath.request import forwarded_body, parse_request, read_body
from gatekeeper.orderpath.undecided import Undecided
from gatekeeper.reconciler import Reconciler
from gatekeeper.request_paths import ReservedPath, validate_headers, validate_target
from gatekeeper.settings import Settings

log = logging.getLogger(__name__)

_CLIENT_HEADERS = ("Authorization", "User-Agent", "Accept-Version")
_PLACEMENTS = (RouteKind.PLACE, RouteKind.COMPLEX)


@dataclass
class OrderPath:
    """Checks, records and forwards the order requests of one proxy listener."""

    engine: Engine
    broker: BrokerClient
    pool: asyncpg.Pool
    settings: Settings
    metrics: Metrics
    # The rows of refused requests: on a connection of their own, in batches.
    refusals: RefusalRows
    reconciler: Reconciler | None = None
    alerts: AlertWorker | None = None
    # Order requests in progress in this process (risk.order_max_in_flight).
    in_flight: int = 0
    undecided: Undecided = field(init=False)

    def __post_init__(self) -> None:
        self.undecided = Undecided(self.refusals, self.alerts, self.metrics)

    async def handle(self, request: web.Request, route: Route) -> web.StreamResponse:
        """Answer one checked (or unsupported) order request (see the module docstring).

        Bounded waiting: the order's deadline (risk.order_deadline_seconds) runs from its
        arrival at this host, the kernel's queues included (gatekeeper.arrival); past it, at
        any wait (broker state, database pool, account lock, before forwarding), the order is
        refused 503 deadline_exceeded. Beyond risk.order_max_in_flight orders in progress a
        new one is refused 503 overloaded at once. Both with a decision row."""
        started = time.perf_counter()
        decision_id = uuid4()
        risk = self.settings.risk
        deadline = started - queued_seconds(request.transport) + risk.order_deadline_seconds
        if self.in_flight >= risk.order_max_in_flight:
            overloaded = Overloaded(
                f"overloaded: {self.in_flight} orders are in progress in this gatekeeper"
                f" (risk.order_max_in_flight); this one was not forwarded, try again"
            )
            return await self.undecided.answer(
                route, decision_id, started, Failure(overloaded, "error")
            )
        self.in_flight += 1
        try:
            return await self._handle(request, route, decision_id, started, deadline)
        finally:
            self.in_flight -= 1

    async def refuse(self, route: Route, error: GatekeeperError) -> web.Response:
        """A request on a connection beyond the connection limits (gatekeeper.web.connections):
        answered 503 unread, never forwarded, with its decision row like every answer on
        these routes (verdict error when the gatekeeper is full, reject when the client holds
        too many connections)."""
        verdict = "error" if isinstance(error, RiskPathUnavailable) else "reject"
        return await self.undecided.answer(
            route, uuid4(), time.perf_counter(), Failure(error, verdict)
        )

    async def _handle(
        self, request: web.Request, route: Route, decision_id: UUID, started: float, deadline: float
    ) -> web.StreamResponse:
        account = route.account_number or "-"
        max_bytes = self.settings.risk.max_body_bytes
        summary: dict[str, Any] | None = None  # once the body is parsed
        try:
            # Every answer on these routes has a decision row, refusals of the request too.
            validate_target(request.raw_path, method=request.method)
            validate_headers(request.headers)
            if route.kind is RouteKind.UNSUPPORTED or route.account_number is None:
                unsupported = Failure(unsupported_route(), "reject")
                return await self.undecided.answer(route, decision_id, started, unsupported)
            raw = await read_body(request, max_bytes)
            orders = parse_request(route.kind, raw, max_bytes)
            summary = order_summary(orders)
            identity = added = None
            if route.kind in _PLACEMENTS:
                data, identity = identify(
                    raw,
                    route.kind.value,
                    decision_id,
                    complex_order=route.kind is RouteKind.COMPLEX,
                )
                added = (
                    None if identity.client_identifiers == identity.external_identifiers else data
                )
            headers = request.headers
            order_request = OrderRequest(
                account=account,
                route_kind=route.kind.value,
                orders=orders,
                dry_run=route.kind.is_dry_run,
                client_headers={h: headers[h] for h in _CLIENT_HEADERS if h in headers},
                replaces_order_id=route.order_id,
                identity=identity,
                deadline=deadline,
                summary=summary,
            )
            order_request.remaining()  # waited past it already (accept queue, body)
            result = await self.engine.decide(order_request, decision_id, started)
        except DuplicateOrder as duplicate:
            latency = time.perf_counter() - started
            detail = {
                "duplicate_of": str(duplicate.first.decision_id),
                "first_outcome": duplicate.first.outcome,
                "summary": summary,
            }
            report(
                self.metrics,
                account,
                route.kind.value,
                "reject",
                ["duplicate_order"],
                detail,
                duplicate.decision_id,
                latency,
            )
            return duplicate_answer(duplicate)
        except (BadRequest, ReservedPath, BrokerAuthFailed, RequestTimeout) as error:
            # BadRequest: an unreadable order (OrderParseError: 400/413/415), an invalid
            # target, Connection or Transfer-Encoding; ReservedPath (404); the request is at
            # fault, and so it is when its body did not arrive in time (RequestTimeout, 408).
            # BrokerAuthFailed: the broker refused the bot's own credentials; its 401/403 is
            # relayed, recorded as broker_auth_failed, never forwarded.
            return await self.undecided.answer(
                route, decision_id, started, Failure(error, "reject"), summary
            )
        except (RiskPathUnavailable, AccountStateInvalid) as error:
            return await self.undecided.answer(
                route, decision_id, started, Failure(error, "error"), summary
            )
        except Exception as error:
            # Type and frames only: an exception's text may quote request data (a token).
            frames = "".join(traceback.format_tb(error.__traceback__))
            log.error(
                "order path failed (%s): %s\n%s", route.kind.value, type(error).__name__, frames
            )
            internal = GatekeeperError("internal_error: the gatekeeper failed to check the order")
            return await self.undecided.answer(
                route, decision_id, started, Failure(internal, "error"), summary
            )
        try:
            decision = result.decision
            # At the event loop's next turn: while the order is on its way to the broker, or
            # once its rejection is written. The bot does not wait for them.
            latency = time.perf_counter() - started
            told = partial(report_decision, self.metrics, account, route.kind.value, result)
            asyncio.get_running_loop().call_soon(told, latency)
            if not decision.allowed:
                return risk_rejection(decision, decision_id)
            if self.reconciler is not None:
                self.reconciler.credential_seen(account, order_request.client_headers)
            body = forwarded_body(raw, added, strict=decision.strict_position_effect)
            if time.perf_counter() > deadline and not route.kind.is_dry_run:
                return await self._too_late(route, result)
            try:
                return await self._forward(
                    request, route, result, body, order_request.client_headers
                )
            except GatekeeperError as error:  # 502/504 after an allowed decision: it has its row
                return error_response(error, headers={DECISION_HEADER: str(decision_id)})
        finally:
            result.sent()  # an allowed order's locks, should it not have been sent

    async def _forward(
        self,
        request: web.Request,
        route: Route,
        result: Result,
        body: bytes,
        client_headers: Mapping[str, str],
    ) -> web.StreamResponse:
        account = route.account_number or "-"
        outcome: db.Outcome = "unknown"
        answer: UpstreamAnswer | None = None
        lost = False
        try:
            answer = await self.broker.send_buffered(
                request, body=body, route_kind=route.kind.value
            )
            if 200 <= answer.status < 300:
                outcome = "accepted"
            elif answer.status >= 500 and not route.kind.is_dry_run:
                # A broker (or a gateway in front of it) may fail after placing the order: only
                # a 4xx proves it was not placed. Counted, never retried, reconciled.
                outcome = "unknown"
                lost = True
            else:
                outcome = "broker_rejected"
        except (UpstreamTimeout, UpstreamDisconnected):
            outcome = "unknown"  # maybe placed: counted, never retried; the reconciler finds out
            lost = True
            raise
        except UpstreamUnavailable:
            outcome = "not_sent"  # no connection was had (not even a pooled one): not counted
            raise
        finally:
            if not route.kind.is_dry_run:
                # The cached state stays: the reservation covers this order until the state
                # shows it, and a background refresh fetches it (no broker call waits).
                accepted = answer.data if answer is not None and outcome == "accepted" else None
                self.engine.state.order_forwarded(account, client_headers, accepted)
            if answer is None:  # no answer to relay: the outcome is recorded before the error
                await self._outcome(result, account, outcome, answer, lost)
        # The broker's answer is relayed first and its outcome row written right after, in
        # the background: the bot does not wait for it (gatekeeper.orderpath.outcome_writes).
        if result.forwarding is not None:
            result.forwarding.outcome_to_come()  # its locks go with the row
        work = self._outcome(result, account, outcome, answer, lost)
        self.engine.outcomes.start(account, work)
        response = answer.response()
        response.headers[DECISION_HEADER] = str(result.decision_id)
        return response

    async def _outcome(
        self,
        result: Result,
        account: str,
        outcome: db.Outcome,
        answer: UpstreamAnswer | None,
        lost: bool,
    ) -> None:
        # The forwarding locks go with the outcome row, in its round trip: a manual stop
        # waits for them (sql/0031), so for the order to have been sent, and no longer.
        await record_outcome(
            self.pool, result.decision_id, account, outcome, answer, result.forwarding
        )
        if lost and self.reconciler is not None:
            self.reconciler.wake.set()  # look the order up at the broker now

    async def _too_late(self, route: Route, result: Result) -> web.Response:
        """An allowed order whose deadline passed before it could be forwarded (its decision
        row took the last of it): not forwarded; ``not_sent`` ends its reservation."""
        account = route.account_number or "-"
        await record_outcome(
            self.pool, result.decision_id, account, "not_sent", None, result.forwarding
        )
        error = deadline_passed_after_decision()
        self.metrics.risk_decisions.labels("error", error.code).inc()
        return error_response(error, headers={DECISION_HEADER: str(result.decision_id)})
