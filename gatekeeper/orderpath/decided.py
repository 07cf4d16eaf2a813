"""What the engine (gatekeeper.orderpath.engine) is asked and what it answers: the request to
decide, its result (the decision, its row's detail, the locks of an allowed order still to be
sent), and the hook told of each decision recorded. Shared by the order path, the operator's
checks and the alerts, none of which needs the engine's own workings."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from uuid import UUID

from gatekeeper.adapters.decisions import DecisionRow
from gatekeeper.adapters.held_decision import HeldLocks
from gatekeeper.core import ComplexOrder, Decision, Limits, Order, OrderPatch
from gatekeeper.errors import DeadlineExceeded
from gatekeeper.order_identity import OrderIdentity


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

    def remaining(self) -> float:
        """Seconds left before the deadline (60 without one); DeadlineExceeded when none."""
        if self.deadline is None:
            return 60.0
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
    trades today with this decision (for the per-account gauges). ``forwarding``: an allowed
    order's forwarding locks, to release once it was sent (gatekeeper.orderpath.handler)."""

    decision: Decision
    decision_id: UUID
    trading_day: date
    limits: tuple[Limits, ...]
    # the decision row's detail (Decision.as_dict with the order's identity and summary)
    detail: Mapping[str, Any] = field(compare=False)
    trades_today: int = 0
    forwarding: HeldLocks | None = field(default=None, compare=False)

    def sent(self) -> None:
        """The order was sent to the broker, or will not be: let its locks go."""
        if self.forwarding is not None:
            self.forwarding.release()


# (connection the decision was recorded on, request, decision, protections applied, trades
# today before this decision, trading day)
DecisionHook = Callable[
    [Any, OrderRequest, Decision, tuple[Limits, ...], int, date], Awaitable[None]
]


@dataclass(frozen=True)
class Evaluated:
    """A decision evaluated and not yet recorded: the protections it applied, the account's
    trades today before it, and its row."""

    decision: Decision
    limits: tuple[Limits, ...]
    trades_before: int
    row: DecisionRow
