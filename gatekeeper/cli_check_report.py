"""What every check of ``gatekeeper check`` shares: the report of ✅/❌ lines, a check's
verdict and its time limit, URLs shown without their credentials, and the pure core's
decision on a synthetic account (the order probes of the emergency-stop and validation
checks)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TextIO
from urllib.parse import urlsplit

from gatekeeper.adapters import protections as store
from gatekeeper.core import AccountSnapshot, Decision, EvaluationContext, Limits, evaluate
from gatekeeper.core.parse import parse_order
from gatekeeper.core.snapshot import Quote, RiskParameters

CHECK_TIMEOUT_SECONDS = 10.0
ACTOR = store.Actor(name="gatekeeper check", via="cli")
# The guide's Step 10 order: a market buy of 999,999 shares.
OVERSIZED = {"symbol": "TEST", "quantity": 999999, "order_type": "market", "action": "buy-to-open"}
SMALL = {**OVERSIZED, "quantity": 10}
_NLV = Decimal("100000.00")


class CheckFailed(Exception):
    """A check's verdict: what is wrong, in words (never a secret)."""


@dataclass
class Report:
    """The lines printed so far and whether any failed."""

    out: TextIO
    failed: bool = False
    lines: list[str] = field(default_factory=list)

    def line(self, ok: bool, text: str, details: list[str] | None = None) -> None:
        self.failed |= not ok
        for item in [f"{'✅' if ok else '❌'} {text}", *(f"     {d}" for d in details or [])]:
            self.lines.append(item)
            self.out.write(item + "\n")
        self.out.flush()


def where(url: str) -> str:
    """``host:port/database`` of a URL: no user, no password."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    return f"{host}{port}{parts.path or ''}"


def failure(error: BaseException) -> str:
    if isinstance(error, CheckFailed):
        return str(error)
    if isinstance(error, TimeoutError):
        return f"no answer within {CHECK_TIMEOUT_SECONDS:g} s"
    return type(error).__name__  # an error's text may quote a URL or a credential


async def check(report: Report, title: str, run: Callable[[], Awaitable[str]]) -> bool:
    """Run one check: ``run`` returns what it found (✅) or raises (❌)."""
    details: list[str] = []
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            found = await run()
    except Exception as error:  # every failure is a ❌ line, never a traceback
        report.line(False, f"{title}: {failure(error)}")
        return False
    text, *details = found.split("\n")
    report.line(True, f"{title}: {text}", details)
    return True


def decide(
    order: dict[str, Any], limits: tuple[Limits, ...], params: RiskParameters | None = None
) -> Decision:
    """The pure core on a synthetic account: 100,000.00 in cash, TEST quoted 100.00/100.02."""
    now = datetime.now(UTC)
    snapshot = AccountSnapshot(
        account_number="GKCHECK",
        nlv=_NLV,
        cash_balance=_NLV,
        start_of_day_nlv=_NLV,
        fetched_at=now,
        quotes={"TEST": Quote("TEST", Decimal("100.00"), Decimal("100.02"), Decimal("100.01"))},
    )
    context = EvaluationContext(
        snapshot=snapshot,
        protections=limits,
        now=now,
        dry_run=True,
        params=params or RiskParameters(),
    )
    return evaluate(parse_order(order, allow_simple=True), context)
