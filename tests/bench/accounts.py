"""The benchmark's accounts: protections that let thousands of trades through, and a trading
day's history generated in bulk for the growth series.

Each measured round uses accounts of its own, so no round inherits another's decisions and
the 10,000-trade daily cap (the most a protection allows) is never reached. Protections are
created as the admin API does (``gatekeeper.adapters.protections``: account lock, change row).
"""

from __future__ import annotations

import asyncpg

from gatekeeper.adapters.account_lock import lock_account
from gatekeeper.adapters.protection_model import Actor
from gatekeeper.adapters.protections import create_protection
from gatekeeper.adapters.users import create_user

MAX_DAILY_TRADES = 10_000
OWNER = "bench@gatekeeper.invalid"
# Columns the database fills itself (identity, defaults the rows must get anew, the hash chain
# the BEFORE INSERT trigger writes): everything else of a template row is copied.
_FILLED_BY_DATABASE = {"id", "decision_id", "decided_at", "recorded_at"}
_CHAIN = {"chain_seq", "chain_prev", "chain_hash"}
# A copy's detail names its own external identifier (gk-<its decision id>), as a real one does.
_DETAIL = (
    "CASE WHEN t.detail ? 'external_identifiers' THEN jsonb_set(t.detail,"
    " '{external_identifiers}', jsonb_build_array('gk-' || g.id::text)) ELSE t.detail END"
)


class AccountNames:
    """Account numbers in TastyTrade's shape (``5WB00001``…), never reused within a run."""

    def __init__(self, prefix: str = "5WB") -> None:
        self.prefix, self.next = prefix, 1

    def take(self, count: int) -> tuple[str, ...]:
        names = tuple(f"{self.prefix}{self.next + i:05d}" for i in range(count))
        self.next += count
        return names


async def protect(database_url: str, accounts: tuple[str, ...]) -> None:
    """One protection per account: default limits, ``max_daily_trades`` at the cap."""
    conn = await asyncpg.connect(database_url)
    try:
        owner = await conn.fetchval("SELECT id FROM users WHERE email = $1", OWNER)
        if owner is None:
            owner = (await create_user(conn, OWNER, "benchmark")).id
        actor = Actor("benchmark", "cli", owner)
        for account in accounts:
            settings = {"max_daily_trades": MAX_DAILY_TRADES}
            await create_protection(conn, owner, account, settings, actor)
    finally:
        await conn.close()


async def _columns(conn: asyncpg.Connection, table: str) -> list[str]:
    rows = await conn.fetch(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = $1"
        " AND is_generated = 'NEVER' AND identity_generation IS NULL ORDER BY ordinal_position",
        table,
    )
    return [row["column_name"] for row in rows if row["column_name"] not in _CHAIN]


async def record_history(database_url: str, account: str, count: int) -> int:
    """Append ``count`` copies of the account's newest allowed placement (and its outcome) to
    today's decisions, through the tables, so every trigger (hash chain, any per-day ledger)
    sees each row. Each copy gets its own decision id and external identifier. Returns the
    number of decisions the account has today afterwards."""
    conn = await asyncpg.connect(database_url)
    try:
        decision_columns = [c for c in await _columns(conn, "risk_decisions")
                            if c not in _FILLED_BY_DATABASE]  # fmt: skip
        outcome_columns = [c for c in await _columns(conn, "order_outcomes")
                           if c not in _FILLED_BY_DATABASE]  # fmt: skip
        copied = ", ".join(_DETAIL if c == "detail" else f"t.{c}" for c in decision_columns)
        async with conn.transaction():
            await lock_account(conn, account)
            template = await conn.fetchval(
                "SELECT d.decision_id FROM risk_decisions d JOIN order_outcomes o"
                " USING (decision_id) WHERE d.account_id = $1 AND d.verdict = 'allow'"
                " AND d.route_kind = 'place' AND o.outcome = 'accepted'"
                " ORDER BY d.id DESC LIMIT 1",
                account,
            )
            if template is None:
                raise RuntimeError(f"{account} has no accepted placement to copy")
            await conn.execute(
                "CREATE TEMP TABLE IF NOT EXISTS bench_new (decision_id uuid) ON COMMIT DROP"
            )
            await conn.execute(
                f"""
                WITH new AS (SELECT gen_random_uuid() AS id FROM generate_series(1, $2)),
                inserted AS (
                    INSERT INTO risk_decisions (decision_id, {", ".join(decision_columns)})
                    SELECT g.id, {copied}
                    FROM risk_decisions t, new g WHERE t.decision_id = $1
                    RETURNING decision_id
                )
                INSERT INTO bench_new SELECT decision_id FROM inserted
                """,  # noqa: S608 - column names from the catalogue
                template,
                count,
            )
            outcome_list = ", ".join(outcome_columns)
            await conn.execute(
                f"""
                INSERT INTO order_outcomes (decision_id, {outcome_list})
                SELECT n.decision_id, {", ".join(f"o.{c}" for c in outcome_columns)}
                FROM bench_new n, order_outcomes o WHERE o.decision_id = $1
                """,  # noqa: S608 - column names from the catalogue
                template,
            )
        today: int = await conn.fetchval(
            "SELECT count(*) FROM risk_decisions d WHERE d.account_id = $1"
            " AND d.trading_day = (SELECT trading_day FROM risk_decisions WHERE decision_id = $2)",
            account,
            template,
        )
        return today
    finally:
        await conn.close()


async def decisions_today(database_url: str, account: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM risk_decisions WHERE account_id = $1"
            " AND trading_day = (SELECT max(trading_day) FROM risk_decisions)",
            account,
        )
        return count
    finally:
        await conn.close()


async def vacuum_ledger(database_url: str) -> None:
    """VACUUM ANALYZE of the tables the order path reads and writes (what autovacuum does on
    its own over a day, but not within a benchmark's seconds)."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "VACUUM (ANALYZE) risk_decisions, order_outcomes, orders_in_flight,"
            " account_day_trades, order_submission_keys"
        )
    finally:
        await conn.close()
