"""The per-account advisory lock: every replica's order decisions for one account, and every
change to its protections, run one at a time under it (until their transaction ends).

It is taken before any protection row is locked, and the audit chain's head row
(``sql/0028``) is locked after both, so writers of one account never wait on each other in a
circle.
"""

from __future__ import annotations

from datetime import datetime

from gatekeeper.adapters.pg import Conn

_KEY = "hashtextextended('gatekeeper.account:' || {}, 0)"


async def lock_account(
    conn: Conn, account_id: str, *, wait_at_most: float | None = None
) -> datetime:
    """Serialize order decisions for one account across every replica (until commit); returns
    the database's ``now()`` (the transaction's start: one clock for the whole decision).

    ``wait_at_most`` (seconds): wait no longer for the lock (asyncpg.LockNotAvailableError); it
    applies to the rest of the transaction's lock waits too (``lock_timeout``, local)."""
    if wait_at_most is None:
        now: datetime = await conn.fetchval(
            f"SELECT now() FROM (SELECT pg_advisory_xact_lock({_KEY.format('$1')})) AS locked",  # noqa: S608
            account_id,
        )
        return now
    # The lateral lock reads the setting's row, so it runs after lock_timeout is set.
    now = await conn.fetchval(
        f"SELECT now() FROM (SELECT set_config('lock_timeout', $2, true) AS applied) AS limited,"  # noqa: S608
        f" LATERAL (SELECT pg_advisory_xact_lock({_KEY.format('$1')}) AS held"
        " WHERE limited.applied IS NOT NULL) AS locked",
        account_id,
        f"{max(1, round(wait_at_most * 1000))}ms",
    )
    return now


async def lock_account_of_protection(conn: Conn, protection_id: int) -> None:
    """Take :func:`lock_account` for the account of a protection (nothing if there is none:
    the caller's own read then reports it missing). An account id never changes."""
    await conn.execute(
        f"SELECT pg_advisory_xact_lock({_KEY.format('account_id')})"  # noqa: S608
        " FROM portfolio_protections WHERE id = $1",
        protection_id,
    )


# Held SHARED by an order from its decision until it was sent to the broker (sql/0031), one
# per account and one for every account ('*'); a manual stop takes its own EXCLUSIVELY before
# it commits, so orders decided before it are sent before it commits and none after. Taken
# before the account lock (the lock order).
_FORWARDING_KEY = "hashtextextended('gatekeeper.forwarding:' || {}, 0)"
EVERY_ACCOUNT = "*"


async def wait_for_forwards(conn: Conn, account_id: str) -> None:
    """In a stop's transaction, before the account lock: wait until every order of
    ``account_id`` (EVERY_ACCOUNT: of every account) already decided has been sent; orders
    decided from now on wait for the stop's commit and then see it."""
    await conn.execute(
        f"SELECT pg_advisory_xact_lock({_FORWARDING_KEY.format('$1')})",
        account_id,
    )


async def wait_for_forwards_of_protection(conn: Conn, protection_id: int) -> None:
    """:func:`wait_for_forwards` for the account of a protection (nothing if there is none)."""
    await conn.execute(
        f"SELECT pg_advisory_xact_lock({_FORWARDING_KEY.format('account_id')})"  # noqa: S608
        " FROM portfolio_protections WHERE id = $1",
        protection_id,
    )
