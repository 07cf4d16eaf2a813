"""What every decision tells the operator besides its row: one ``RISK_DECISION`` log line
(never a token; the logger is pinned to INFO so configuration cannot silence it), the
decision counters and the account's gauges."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from functools import lru_cache
from typing import Any
from uuid import UUID

import orjson

from gatekeeper.account_gauges import publish_decision
from gatekeeper.metrics import Metrics
from gatekeeper.orderpath.decided import Result

log = logging.getLogger(__name__)
decision_log = logging.getLogger("gatekeeper.decisions")
decision_log.setLevel(logging.INFO)


def report_decision(
    metrics: Metrics, account: str, route_kind: str, result: Result, latency: float
) -> None:
    """The log line, the counters and the account's gauges of a decision the engine recorded.
    Called by the order path at the event loop's next turn (while the order is on its way to
    the broker, or once its rejection is written: the bot does not wait for it), so it never
    raises: a failure is logged by its type."""
    decision = result.decision
    try:
        codes = [code.value for code in decision.codes]
        verdict = decision.verdict.value
        report(metrics, account, route_kind, verdict, codes, result.detail, result.decision_id,
               latency)  # fmt: skip
        publish_decision(metrics, account, result)
    except Exception as error:
        log.error("decision %s not reported: %s", result.decision_id, type(error).__name__)


def report(
    metrics: Metrics,
    account: str,
    route_kind: str,
    verdict: str,
    codes: list[str],
    detail: Mapping[str, object],
    decision_id: UUID,
    latency: float,
) -> None:
    """The log line and the counters of one answer on an order route."""
    count(metrics, verdict, codes, route_kind, latency)
    log_decision(account, route_kind, verdict, codes, dict(detail), decision_id, latency)


def count(
    metrics: Metrics, verdict: str, codes: list[str], route_kind: str, latency: float
) -> None:
    """Count one decision (by verdict and by code) and its latency."""
    _series(metrics.order_path_duration, route_kind).observe(latency)
    _series(metrics.decisions, verdict).inc()
    for code in codes or ["none"]:
        _series(metrics.risk_decisions, verdict, code).inc()


@lru_cache(maxsize=4096)
def _series(metric: Any, *labels: str) -> Any:
    """A metric's series for ``labels``, looked up once (``labels()`` takes a lock and checks
    its arguments on every call). Codes and route kinds are a fixed set: the cache stays
    small; the registry keeps every series anyway."""
    return metric.labels(*labels)


def log_decision(
    account: str,
    route_kind: str,
    verdict: str,
    codes: list[str],
    detail: dict[str, Any],
    decision_id: UUID,
    latency: float,
) -> None:
    """The ``RISK_DECISION`` line of one decision."""
    entry = {
        "decision_id": str(decision_id),
        "account": account,
        "route_kind": route_kind,
        "verdict": verdict,
        "codes": codes,
        "figures": detail.get("figures", {}),
        "notes": [n.get("code") for n in detail.get("notes", [])],
        "latency_ms": round(latency * 1000, 3),
    }
    if summary := detail.get("summary"):
        entry["summary"] = summary
    decision_log.info("RISK_DECISION %s", orjson.dumps(entry, option=orjson.OPT_SORT_KEYS).decode())
