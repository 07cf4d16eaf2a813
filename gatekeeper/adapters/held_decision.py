"""The order path's decision in two round trips before forwarding (sql/0031).

:func:`read` takes the forwarding locks (shared) and the account lock as SESSION locks and
reads the decision's inputs (0030's ``order_path_inputs``) after they were granted;
:func:`record` appends the decision row, committed on its own, unless the global emergency
stop changed since the read (then nothing is recorded: read again); its commit lets the
account lock go (sql/0036). :class:`HeldLocks` lets the rest go: the account lock of a row
written otherwise, in the background once it is committed, and the forwarding locks once the
order was sent: with its outcome row, in the same statement
(:meth:`HeldLocks.outcome_then_release`), or on their own; then it gives the connection
back to the pool (or closes it, should unlocking fail: a closed connection holds no lock).
No lock ever outlives its connection, and no connection goes back to the pool holding one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg

from gatekeeper.adapters.decisions import (
    PENDING_HORIZON,
    SEEN_SETTLE_AFTER,
    DecisionRow,
    LockedInputs,
    inputs_from_row,
    state_age,
)

log = logging.getLogger(__name__)

_READ = (
    "SELECT * FROM order_path_inputs_held($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
)
_RECORD = (
    "SELECT record_decision_held"
    "($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, $11, $12::jsonb, $13, $14)"
)
_UNLOCK_ACCOUNT = "SELECT pg_advisory_unlock(hashtextextended('gatekeeper.account:' || $1, 0))"
_UNLOCK_ALL = "SELECT pg_advisory_unlock_all()"
# One statement, one round trip: a data-modifying WITH runs to completion whatever the outer
# SELECT reads. Postgres runs the outer SELECT first and the INSERT's constraints are checked
# after it, and a session lock let go stays let go when the statement then fails: the locks
# go whether or not the row could be added (as they did when they were let go on their own,
# right after the order was sent).
_OUTCOME_THEN_UNLOCK = """
WITH added AS (
    INSERT INTO order_outcomes
        (decision_id, account_id, outcome, http_status, broker_order_id, answer_body)
    VALUES ($1, $2, $3, $4, $5, $6)
    RETURNING 1
)
SELECT pg_advisory_unlock_all(), (SELECT count(*) FROM added)
"""


async def read(
    conn: Any,
    account_id: str,
    nlv: Decimal,
    *,
    seen_order_ids: Collection[str],
    day: date | None,
    net_deposits: Decimal,
    state_fetched_at: datetime | None,
    client_identifiers: Sequence[str],
    fingerprint: str,
    duplicate_window_seconds: float,
    wait_at_most: float,
    clock: datetime | None = None,
    settle_after: timedelta = SEEN_SETTLE_AFTER,
) -> LockedInputs:
    """The locks (waited for ``wait_at_most`` seconds at most: asyncpg.LockNotAvailableError)
    and the inputs, in one round trip; the locks stay with the session (see the module
    docstring). The round trip itself is bounded by ``wait_at_most`` plus a quarter second."""
    row = await conn.fetchrow(
        _READ,
        account_id,
        nlv,
        day,
        net_deposits,
        clock,
        None,  # the state's order ids are checked here, not sent (sql/0030)
        state_age(state_fetched_at, clock),
        PENDING_HORIZON,
        settle_after,
        list(client_identifiers),
        fingerprint,
        duplicate_window_seconds,
        max(1, round(wait_at_most * 1000)),
        timeout=wait_at_most + 0.25,
    )
    return inputs_from_row(row, day=day, net_deposits=net_deposits, seen_order_ids=seen_order_ids)


async def record(
    conn: Any, row: DecisionRow, *, global_stop_mode: str | None, wait_at_most: float
) -> bool:
    """Append the decision row (committed on its own) under the session's account lock, which
    the commit lets go (one of the session's holds: sql/0036); False, recording nothing and
    letting nothing go, when the global stop's mode is no longer ``global_stop_mode``."""
    recorded: bool = await conn.fetchval(
        _RECORD,
        global_stop_mode or "",
        *row.arguments(),
        timeout=wait_at_most + 0.25,
    )
    return recorded


class HeldLocks:
    """The session locks of one decision's connection, let go in the background."""

    def __init__(self, pool: asyncpg.Pool, conn: Any, account: str, tasks: set[Any]) -> None:
        self._pool = pool
        self._conn = conn
        self._account = account
        self._tasks = tasks
        self._decided: asyncio.Task[None] | None = None
        self._released = False
        # An outcome row will let the locks go (``outcome_to_come``): ``release`` leaves them.
        self._outcome_to_come = False
        # The session's holds of the account lock: one per :func:`read`, one fewer once
        # :func:`record` committed a row (its commit let that one go: sql/0036).
        self.account_holds = 0

    @property
    def conn(self) -> Any:
        return self._conn

    def decided(self) -> None:
        """The decision row is committed: let the account lock go, unless its commit already
        did (the next decision of the account may read the ledger now); the forwarding locks
        stay."""
        if self._decided is None and not self._released and self.account_holds > 0:
            self._decided = self._spawn(self._unlock_account())

    def outcome_to_come(self) -> None:
        """The order was sent and :meth:`outcome_then_release` will be called (its outcome row is
        written after the answer was relayed): until then :meth:`release` does nothing."""
        self._outcome_to_come = True

    def release(self) -> None:
        """The order was sent (or will not be): let every lock go, return the connection."""
        if not self._released and not self._outcome_to_come:
            self._released = True
            self._spawn(self._release())

    @property
    def held(self) -> bool:
        """Whether the locks are still held (``release`` or ``outcome_then_release`` not yet
        called)."""
        return not self._released

    async def outcome_then_release(
        self,
        decision_id: Any,
        account_id: str,
        outcome: str,
        http_status: int | None,
        broker_order_id: str | None,
        answer_body: str | None,
    ) -> None:
        """The order was sent (or will not be): append its outcome row and let every lock
        go in one round trip, then return the connection. Raises what the INSERT raised:
        asyncpg.UniqueViolationError when the reconciler resolved it first (the locks are let
        go again on their own then, should the statement not have reached its unlock); on
        any other error the connection is closed."""
        self._released = True
        try:
            if self._decided is not None:
                await self._decided
            try:
                await self._conn.fetchval(
                    _OUTCOME_THEN_UNLOCK,
                    decision_id,
                    account_id,
                    outcome,
                    http_status,
                    broker_order_id,
                    answer_body,
                )
            except asyncpg.UniqueViolationError:
                await self._conn.fetchval(_UNLOCK_ALL, timeout=10)
                raise
        except asyncpg.UniqueViolationError:
            raise
        except BaseException:
            _close(self._conn)
            raise
        finally:
            await self._pool.release(self._conn)

    def _spawn(self, work: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _unlock_account(self) -> None:
        await self._conn.fetchval(_UNLOCK_ACCOUNT, self._account, timeout=10)

    async def _release(self) -> None:
        try:
            if self._decided is not None:
                await self._decided
            await self._conn.fetchval(_UNLOCK_ALL, timeout=10)
        except asyncio.CancelledError:
            _close(self._conn)
            raise
        except Exception as error:
            log.warning("closing a decision's connection: %s", type(error).__name__)
            _close(self._conn)
        finally:
            await self._pool.release(self._conn)


def _close(conn: Any) -> None:
    """Close the connection: a lock must never go back to the pool. One that asyncpg already
    found closed (the server ended the session, and every lock with it) was given back to the
    pool by asyncpg: nothing is left to close."""
    with contextlib.suppress(asyncpg.InterfaceError):  # "released back to the pool"
        conn.terminate()
