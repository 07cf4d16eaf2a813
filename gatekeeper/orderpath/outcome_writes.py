"""The outcome rows of forwarded orders, written after their answers were relayed.

The bot does not wait for its order's outcome row: the handler (gatekeeper.orderpath.handler)
relays the broker's answer and the row is written in the background, in the round trip that
lets the order's forwarding locks go (gatekeeper.adapters.held_decision). Until it is
committed the order is unresolved, as it was while the broker was being asked: its
reservation counts and a retry of it is a duplicate.

So that no decision reads the ledger as it stood before a row this process still owes, the
account's next decision here waits for the account's rows first (:meth:`OutcomeWrites.written`,
before its locked read; its gathering of the state overlaps with them): a broker's refusal
never counts against the next order, a retry of an accepted order gets the broker's answer,
and the state's orders are matched to their reservations by broker order id. Another
replica's decision for the account meanwhile reads the order as still in flight: it counts,
at worst twice for that moment (never less). Should the process die before a row is written,
the reconciler (gatekeeper.reconciler) finds the order at the broker.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from functools import partial
from typing import Any

from gatekeeper.orderpath.decided import OrderRequest

log = logging.getLogger(__name__)


class OutcomeWrites:
    """The outcome rows being written, per account (see the module docstring)."""

    def __init__(self) -> None:
        self._pending: dict[str, set[asyncio.Task[None]]] = {}

    def start(self, account: str, work: Coroutine[Any, Any, None]) -> None:
        """Write an outcome row of ``account`` (``work``) in the background. Its task starts
        at the event loop's next turn: after aiohttp wrote the answer the handler returned.
        Synchronous and never raises (a failed row is logged, by type: the reservation then
        counts until the reconciler resolves it)."""
        task = asyncio.get_running_loop().create_task(work)
        self._pending.setdefault(account, set()).add(task)
        task.add_done_callback(partial(self._done, account))

    async def written(self, request: OrderRequest) -> None:
        """Wait, within the order's deadline, for the rows of its account still being
        written (DeadlineExceeded past it)."""
        pending = self._pending.get(request.account)
        if pending:
            await asyncio.wait(list(pending), timeout=request.remaining())
            request.remaining()

    async def aclose(self) -> None:
        """Wait for every row still being written (at shutdown)."""
        tasks = [task for pending in self._pending.values() for task in pending]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def _done(self, account: str, task: asyncio.Task[None]) -> None:
        pending = self._pending.get(account)
        if pending is not None:
            pending.discard(task)
            if not pending:
                del self._pending[account]
        error = None if task.cancelled() else task.exception()
        if error is not None:  # its type only: an exception's text may quote request data
            log.error("an order's outcome row failed: %s", type(error).__name__)
