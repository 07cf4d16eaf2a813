"""A ``gatekeeper serve`` process killed (SIGKILL) between its decision and the forward, and
between the forward and the broker's answer: the reservation it left is resolved by the
reconciler of the restarted process (``not_placed`` / ``accepted``), and the time it takes is
measured from the kill."""

from __future__ import annotations

import asyncio
import time

from tests.faults.figures import record
from tests.faults.invariants import Seen
from tests.faults.stack import FaultStack, GatekeeperProcess, eventually
from tests.fixtures.orders import order

QUIET_ENV = {  # as test_broker_faults.QUIET: once warmed, an order sends only itself
    "GATEKEEPER_RISK__STATE_TTL_SECONDS": "60",
    "GATEKEEPER_RISK__MAX_STATE_AGE_SECONDS": "60",
    "GATEKEEPER_RISK__QUOTE_TTL_SECONDS": "60",
    "GATEKEEPER_RISK__MONEY_MOVEMENTS_TTL_SECONDS": "600",
}


async def _allowed_decision(faults: FaultStack) -> str:
    """The id of the first placement the gatekeeper allowed (waits for its row)."""
    query = (
        "SELECT decision_id::text FROM risk_decisions"
        " WHERE verdict = 'allow' AND route_kind = 'place' ORDER BY id LIMIT 1"
    )

    async def decided() -> bool:
        return await faults.pool.fetchval(query) is not None

    await eventually(decided, within=10, every=0.01)
    value: str = await faults.pool.fetchval(query)
    return value


async def _kill_and_resolve(
    faults: FaultStack, process: GatekeeperProcess, pending: asyncio.Future[Seen]
) -> tuple[str, str, float, float]:
    """Kill ``process`` while ``pending`` waits for its answer, restart, and wait until the
    order it decided is resolved: (decision id, outcome, seconds from the kill, from the
    restarted process's start)."""
    decision_id = await _allowed_decision(faults)
    process.kill()
    killed = time.monotonic()
    await process.process.wait()
    await pending
    assert await faults.outcome(decision_id) is None  # nothing recorded: a dead replica's
    faults.broker_proxy.clear()
    restarted = time.monotonic()
    again = await faults.spawn(**QUIET_ENV)
    # a bot of the account is seen again: its credential lets the reconciler look
    assert (await faults.bot(again.proxy_url).place(order(), "seen", dry_run=True)).status == 201

    async def resolved() -> bool:
        return await faults.outcome(decision_id) not in (None, "unknown")

    await eventually(resolved, within=20)
    outcome = await faults.outcome(decision_id)
    assert outcome is not None
    return decision_id, outcome, time.monotonic() - killed, time.monotonic() - restarted


async def test_killed_between_decision_and_forward_resolves_not_placed(
    faults: FaultStack,
) -> None:
    await faults.protect()
    process = await faults.spawn(**QUIET_ENV)
    bot = faults.bot(process.proxy_url)
    assert (await bot.place(order(), "warm", dry_run=True)).status == 201
    # The forward never reaches the broker: the process dies with it in its hands.
    faults.broker_proxy.add("timeout", "upstream")
    pending = asyncio.ensure_future(bot.place(order(), "killed"))
    _, outcome, since_kill, since_start = await _kill_and_resolve(faults, process, pending)
    assert outcome == "not_placed"
    assert faults.paper.book.received_orders() == []
    await faults.assert_invariants()
    record("gatekeeper killed between decision and forward", "reservation -> not_placed",
           f"resolved {since_kill:.2f} s after the kill ({since_start:.2f} s after restart;"
           " reconcile_grace_seconds=2)")  # fmt: skip


async def test_killed_between_forward_and_outcome_resolves_accepted(faults: FaultStack) -> None:
    await faults.protect()
    process = await faults.spawn(**QUIET_ENV)
    bot = faults.bot(process.proxy_url)
    # The broker places the order and holds its answer: the process dies meanwhile.
    faults.paper.book.add_fault(
        f"/accounts/{faults.account}/orders", delay_seconds=3.0, method="POST", times=1,
        after=True,
    )  # fmt: skip
    pending = asyncio.ensure_future(bot.place(order(), "killed"))

    async def placed() -> bool:
        return len(faults.paper.book.received_orders()) == 1

    await eventually(placed, within=10, every=0.01)
    decision_id, outcome, since_kill, since_start = await _kill_and_resolve(
        faults, process, pending
    )
    assert outcome == "accepted"
    (entry,) = faults.paper.book.received_orders()
    broker_id = await faults.pool.fetchval(
        "SELECT broker_order_id FROM order_outcomes WHERE decision_id = $1::uuid"
        " AND outcome = 'accepted'",
        decision_id,
    )
    assert broker_id == str(entry.order_ids[0])
    await faults.assert_invariants()
    record("gatekeeper killed between forward and outcome", "reservation -> accepted",
           f"resolved {since_kill:.2f} s after the kill ({since_start:.2f} s after restart;"
           " reconcile_grace_seconds=2)")  # fmt: skip
