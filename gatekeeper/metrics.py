"""Every Prometheus metric Gatekeeper exports, defined once on an injected registry.

Label values are bounded: route kinds, decisions, reason codes and error kinds come from
fixed sets; account numbers appear only on per-account gauges (one per protection).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True)
class Metrics:
    registry: CollectorRegistry
    proxy_requests: Counter
    proxy_request_duration: Histogram
    upstream_errors: Counter
    refused_requests: Counter
    admin_auth_failures: Counter
    emergency_stop_events: Counter
    risk_decisions: Counter
    order_path_duration: Histogram
    state_fetch_errors: Counter
    client_connections: Gauge
    client_connections_closed: Counter
    decisions: Counter
    status_refresh_failures: Counter
    # Per account (one series per account with a protection): gatekeeper.account_gauges.
    emergency_stop_active: Gauge
    # The global stop (every account): one series, no labels.
    global_emergency_stop_active: Gauge
    trades_today: Gauge
    daily_trades_limit: Gauge
    day_pnl: Gauge
    limit_utilisation: Gauge
    cash_reserve_headroom: Gauge
    alert_deliveries: Counter
    # What the per-account gauges show, by (gauge, labels): value and series (kept by
    # gatekeeper.account_gauges, the only writer of those gauges, so that a decision sets only
    # the series whose value moved).
    account_series: dict[tuple[Gauge, tuple[str, ...]], tuple[float, Any]] = field(
        default_factory=dict, compare=False, repr=False
    )

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None) -> Metrics:
        """Register Gatekeeper's metrics on ``registry`` (a fresh one by default)."""
        registry = registry if registry is not None else CollectorRegistry()
        metrics = cls(
            registry=registry,
            proxy_requests=Counter(
                "gatekeeper_proxy_requests_total",
                "Requests answered by the proxy listener.",
                ["route_kind", "method", "status_class"],
                registry=registry,
            ),
            proxy_request_duration=Histogram(
                "gatekeeper_proxy_request_duration_seconds",
                "Time from receiving a request to finishing its response.",
                ["route_kind"],
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            upstream_errors=Counter(
                "gatekeeper_upstream_errors_total",
                "Requests that got no complete answer from the broker.",
                ["kind"],  # unavailable | connect_timeout | timeout | disconnected
                registry=registry,
            ),
            refused_requests=Counter(
                "gatekeeper_refused_requests_total",
                "Requests refused before reaching the broker, by reason code.",
                ["code"],
                registry=registry,
            ),
            admin_auth_failures=Counter(
                "gatekeeper_admin_auth_failures_total",
                "Admin API calls refused for want of a valid token or role, by reason code.",
                ["reason"],  # token_missing | token_malformed | ... | insufficient_role
                registry=registry,
            ),
            emergency_stop_events=Counter(
                "gatekeeper_emergency_stop_events_total",
                # Read from the database's emergency_events and global_emergency_events by the
                # status job, so stops from the CLI and other replicas count too: every
                # replica counts every event.
                "Emergency stops triggered or cleared (any origin) since this process started.",
                # account | global (every account at once); triggered | cleared;
                # api | cli | system
                ["scope", "event", "via"],
                registry=registry,
            ),
            risk_decisions=Counter(
                "gatekeeper_risk_decisions_total",
                # One per reason code: a rejection for three reasons counts three times here
                # and once in gatekeeper_decisions_total.
                "Order-path decisions, by verdict and reason code (allowed: code 'none').",
                ["verdict", "code"],
                registry=registry,
            ),
            order_path_duration=Histogram(
                "gatekeeper_order_path_duration_seconds",
                "Time the order path adds before forwarding or rejecting (parse to decision).",
                ["route_kind"],
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            state_fetch_errors=Counter(
                "gatekeeper_state_fetch_errors_total",
                "Account state or quotes that could not be fetched or cached, by kind.",
                ["kind"],  # broker | invalid | cache | database
                registry=registry,
            ),
            client_connections=Gauge(
                "gatekeeper_client_connections",
                "Client connections open on each listener.",
                ["listener"],  # proxy | admin
                registry=registry,
            ),
            client_connections_closed=Counter(
                "gatekeeper_client_connections_closed_total",
                "Client connections refused or closed by the gatekeeper, by reason.",
                # head_timeout | body_timeout | too_many_connections |
                # too_many_connections_per_address
                ["listener", "reason"],
                registry=registry,
            ),
            decisions=Counter(
                "gatekeeper_decisions_total",
                "Order-path decisions, one per decision, by verdict.",
                ["verdict"],  # allow | reject | error
                registry=registry,
            ),
            status_refresh_failures=Counter(
                "gatekeeper_status_refresh_failures_total",
                "Runs of the status job that could not read the database.",
                registry=registry,
            ),
            emergency_stop_active=Gauge(
                "gatekeeper_emergency_stop_active",
                "1 while an emergency stop is active on the account, else 0.",
                ["account"],
                registry=registry,
            ),
            global_emergency_stop_active=Gauge(
                "gatekeeper_global_emergency_stop_active",
                "1 while the global emergency stop (every account) is active, else 0.",
                registry=registry,
            ),
            trades_today=Gauge(
                "gatekeeper_trades_today",
                "Orders counted toward the account's daily trade limit today (New York day).",
                ["account"],
                registry=registry,
            ),
            daily_trades_limit=Gauge(
                "gatekeeper_daily_trades_limit",
                "The account's max_daily_trades (the tightest of its active protections).",
                ["account"],
                registry=registry,
            ),
            day_pnl=Gauge(
                "gatekeeper_day_pnl_ratio",
                "Day P&L as a fraction of start-of-day NLV, as of the last decision today.",
                ["account"],
                registry=registry,
            ),
            limit_utilisation=Gauge(
                "gatekeeper_limit_utilisation_ratio",
                "Share of a limit in use (1 = at the limit), as of the last decision today.",
                # max_portfolio_exposure | max_position_concentration | cash_reserve |
                # max_daily_loss | max_daily_trades
                ["account", "limit"],
                registry=registry,
            ),
            cash_reserve_headroom=Gauge(
                "gatekeeper_cash_reserve_headroom_ratio",
                "Cash above the reserve after the last decision today, as a fraction of NLV.",
                ["account"],
                registry=registry,
            ),
            alert_deliveries=Counter(
                "gatekeeper_alert_deliveries_total",
                "Alert delivery attempts, by channel and result.",
                ["channel", "result"],  # email | webhook; delivered | retry | failed
                registry=registry,
            ),
        )
        for verdict in ("allow", "reject", "error"):  # present at 0: alerts see the first one
            metrics.decisions.labels(verdict)
        return metrics
