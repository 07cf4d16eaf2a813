"""How the status shows what an emergency stop did with an account's working orders."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from gatekeeper.adapters import stop_cancels


class OrderCancelOut(BaseModel):
    order_id: str | None
    outcome: Literal["cancelled", "failed", "not_attempted", "kept"] = Field(
        description="kept: risk-reducing, left working"
    )
    http_status: int | None = Field(description="the broker's answer to the cancel")
    detail: str


class CancelRunOut(BaseModel):
    run_id: int
    stop: Literal["account", "global"]
    event_id: int = Field(description="emergency_events id (account) or global event id")
    credential: Literal["request", "gatekeeper_oauth", "bot"]
    complete: bool = Field(description="false: some cancel failed (tried again)")
    covered_by: int | None
    ran_at: datetime
    orders: list[OrderCancelOut]


class WorkingOrdersOnStop(BaseModel):
    """What the active stops did with the account's working orders."""

    state: Literal["no_stop", "disabled", "pending", "done", "incomplete"]
    message: str
    runs: list[CancelRunOut]


def working_orders_on_stop(
    events: list[stop_cancels.StopEvent], runs: list[stop_cancels.CancelRun]
) -> WorkingOrdersOnStop:
    """The state in words: the status says plainly when working orders are not cancelled."""
    out = [
        CancelRunOut(
            run_id=r.id,
            stop=r.kind,
            event_id=r.event_id,
            credential=r.credential,
            complete=r.complete,
            covered_by=r.covered_by,
            ran_at=r.ran_at,
            orders=[OrderCancelOut(**o.__dict__) for o in r.orders],
        )
        for r in runs
    ]
    wanted = [e for e in events if e.cancel]
    if not events:
        return WorkingOrdersOnStop(state="no_stop", message="no emergency stop is active", runs=out)
    if not wanted:
        return WorkingOrdersOnStop(
            state="disabled",
            message="working orders are NOT cancelled on stop for this account"
            " (cancel_working_orders_on_stop is off)",
            runs=out,
        )
    if stop_cancels.pending(wanted, runs):
        failed = any(not r.complete for r in runs)
        return WorkingOrdersOnStop(
            state="pending",
            message="working orders are NOT yet cancelled: "
            + (
                "some cancels failed; trying again with the next broker credentials"
                if failed
                else "waiting for broker credentials for the account (the gatekeeper's own"
                " OAuth client when configured, else the next bot request the broker accepts)"
            ),
            runs=out,
        )
    done = [r for r in runs if r.complete and r.covered_by is None]
    if all(any(r.complete and (r.kind, r.event_id) == (e.kind, e.event_id) for r in runs)
           for e in wanted):  # fmt: skip
        orders = [o for r in done for o in r.orders]
        counts = {k: sum(o.outcome == k for o in orders) for k in ("cancelled", "kept")}
        return WorkingOrdersOnStop(
            state="done",
            message=f"working orders cancelled: {counts['cancelled']} cancelled,"
            f" {counts['kept']} kept (risk-reducing)",
            runs=out,
        )
    return WorkingOrdersOnStop(
        state="incomplete",
        message="working orders NOT all cancelled: cancels failed"
        f" {stop_cancels.MAX_CANCEL_RUNS} times; cancel them at the broker",
        runs=out,
    )
