"""A request on an order route that the gate did not decide (a refusal without a rule verdict:
an unreadable order, an unsupported route, a gatekeeper that is full, the risk path failing):
its row recorded when Postgres answers, its log line and counters, and its answer in
TastyTrade's format. Never forwarded."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from uuid import UUID

from aiohttp import web

from gatekeeper.adapters.refusal_rows import RefusalRows
from gatekeeper.alerts.worker import AlertWorker
from gatekeeper.core import Route
from gatekeeper.errors import DatabaseUnavailable, DeadlineExceeded
from gatekeeper.metrics import Metrics
from gatekeeper.orderpath.answers import Failure, error_rejection
from gatekeeper.orderpath.record import record_refusal
from gatekeeper.orderpath.report import report

log = logging.getLogger(__name__)

# How long the row of a refusal may wait when the database just failed to answer in time.
_REFUSAL_ROW_WAIT = 0.5


@dataclass(frozen=True)
class Undecided:
    """Where the requests the gate did not decide go: their rows, alerts and counters."""

    refusals: RefusalRows
    alerts: AlertWorker | None
    metrics: Metrics

    async def answer(
        self,
        route: Route,
        decision_id: UUID,
        started: float,
        failure: Failure,
        summary: Mapping[str, object] | None = None,
    ) -> web.Response:
        """Record (if Postgres answers), log and render a request the gate did not decide."""
        refusals, alerts, metrics = self.refusals, self.alerts, self.metrics
        code = failure.error.code
        account = route.account_number or "-"
        latency = time.perf_counter() - started
        detail: dict[str, object] = {
            "verdict": failure.verdict,
            "code": code,
            "message": failure.error.message,
        }
        if summary:
            detail["summary"] = dict(summary)
        recorded = await record_refusal(
            refusals,
            decision_id=decision_id,
            account=account,
            route_kind=route.kind.value,
            replaces_order_id=route.order_id,
            verdict=failure.verdict,
            code=code,
            message=failure.error.message,
            detail=detail,
            latency=latency,
            # The database did not answer the decision: the row gets a moment, not another
            # command timeout (the answer is 503 either way).
            wait_at_most=_REFUSAL_ROW_WAIT
            if isinstance(failure.error, DatabaseUnavailable | DeadlineExceeded)
            else None,
        )
        if not recorded and not isinstance(failure.error, DatabaseUnavailable):
            log.error("decision %s not recorded: the database cannot be reached", decision_id)
        if alerts is not None:
            alerts.note_failure(account, failure.error)  # risk path failing: no I/O
        report(
            metrics,
            account,
            route.kind.value,
            failure.verdict,
            [code],
            detail,
            decision_id,
            latency,
        )
        return error_rejection(failure.error, decision_id)
