"""An alert event as a message: an ASCII title (mail subject, ntfy's Title header) and a text
of ``Label: value`` lines. Pure; the event carries everything (gatekeeper.alerts.outbox.Event).

Nothing secret reaches a message: events hold account numbers, reason codes, figures and the
names operators gave; never a token, URL or credential.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from gatekeeper.alerts.outbox import ALL_ACCOUNTS, Event

# The figures an alert shows, in this order (a decision's ``detail.figures`` names).
FIGURES = (
    "nlv",
    "day_pnl_pct",
    "exposure_after_pct",
    "largest_concentration_underlying",
    "largest_concentration_pct",
    "cash_after_pct",
    "order_value",
)
_CENT = Decimal("0.01")


@dataclass(frozen=True)
class Message:
    event_id: int | str  # the outbox event's id; ``test-…`` for a test message
    kind: str
    account: str
    title: str
    text: str
    # ntfy: Tags and Priority headers
    tags: str
    priority: str
    details: Mapping[str, Any]


def figures_line(figures: Mapping[str, Any] | None) -> str | None:
    """``nlv=94465.00 day_pnl_pct=-5.54 ...`` from a decision's figures (decimals as text)."""
    if not figures:
        return None
    parts = []
    for name in FIGURES:
        value = figures.get(name)
        if value is None:
            continue
        with contextlib.suppress(InvalidOperation):  # not a number: shown as it is
            value = Decimal(str(value)).quantize(_CENT, rounding=ROUND_HALF_UP)
        parts.append(f"{name}={value}")
    return " ".join(parts) or None


def _working_orders(event: Event) -> str:
    if event.cancels:
        counts = ", ".join(f"{count} {outcome}" for outcome, count in sorted(event.cancels.items()))
        return f"{counts} (cancelled: no longer working; kept: risk-reducing)"
    if event.account == ALL_ACCOUNTS:
        return "each account's are cancelled as its stop takes effect (see the status)"
    if event.cancel_on_stop is False:
        return "not cancelled (cancel_working_orders_on_stop is off for this protection)"
    return "not cancelled yet when this alert was sent (see the status)"


def _where(event: Event) -> str:
    if event.account == ALL_ACCOUNTS:
        return "every account"
    if event.protection_id is not None:
        return f"{event.account} (protection {event.protection_id})"
    return event.account


def render(event: Event) -> Message:
    """The message of ``event``."""
    p = event.payload
    account = "all accounts" if event.account == ALL_ACCOUNTS else event.account
    lines: list[tuple[str, str | None]] = [("Account", _where(event))]
    tags, priority = "warning", "4"
    if event.kind == "stop_triggered":
        title = f"Emergency stop triggered on {account}"
        lines += [
            ("Mode", p.get("mode")),
            ("Who", f"{p.get('actor')} (via {p.get('via')})"),
            ("Why", p.get("reason")),
            ("Figures", figures_line(event.last_figures)),
            ("Working orders", _working_orders(event)),
        ]
        tags, priority = "rotating_light", "5"
    elif event.kind == "stop_cleared":
        title = f"Emergency stop cleared on {account}"
        lines += [
            ("Mode of the stop", p.get("mode")),
            ("Who", f"{p.get('actor')} (via {p.get('via')})"),
        ]
        tags, priority = "white_check_mark", "3"
    elif event.kind == "daily_loss_limit_reached":
        title = f"Daily-loss limit reached on {account}"
        lines += [("Why", p.get("message")), ("Figures", figures_line(p.get("figures")))]
        tags, priority = "chart_with_downwards_trend", "5"
    elif event.kind == "limit_utilisation":
        title = f"{p.get('limit')} at {p.get('utilisation_pct')}% of its limit on {account}"
        lines += [
            ("Why", f"{p.get('limit')} is {p.get('utilisation_pct')}% used"
             f" (alert threshold {p.get('threshold_pct')}%)"),
            ("Trades today", f"{p.get('trades_today')} of {p.get('max_daily_trades')}"),
            ("Figures", figures_line(p.get("figures"))),
        ]  # fmt: skip
    elif event.kind == "rejection_burst":
        window = p.get("window_seconds")
        title = f"{p.get('count')} or more rejected orders in {window}s on {account}"
        lines += [("Why", f"last rejection: {p.get('codes')}: {p.get('message')}")]
    else:  # risk_path_failed
        title = f"Risk checks failing on {account}: {p.get('code')}"
        lines += [
            ("Why", f"{p.get('code')}: orders are rejected (fail closed)"),
            ("Failures", f"{p.get('count')} from {p.get('first_at')} to {p.get('last_at')}"),
        ]
    lines.append(("Time", event.created_at.isoformat()))
    text = "\n".join(f"{label}: {value}" for label, value in lines if value is not None)
    details = {**p, "figures": p.get("figures") or event.last_figures}
    return Message(
        event.id, event.kind, event.account, _ascii(title), text, tags, priority, details
    )


def _ascii(text: str) -> str:
    return text.encode("ascii", "replace").decode("ascii")
