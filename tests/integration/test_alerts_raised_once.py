"""A daily alert is sent to Postgres until this process knows it is in the outbox, and no
more: an account above a threshold all day costs its orders no round trip for it. So is a
rejection burst's, for the rest of its window. What could still roll back is never taken as
known."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from gatekeeper.alerts import outbox
from gatekeeper.alerts.triggers import RaisedAlerts
from gatekeeper.settings_sections import AlertSettings
from tests.fixtures.decision_rows import record_copies

ACCOUNT = "5WA00042"


class Statements:
    """The statements a connection sends (asyncpg's own query logger)."""

    def __init__(self, conn: Any) -> None:
        self.sent: list[str] = []
        conn.add_query_logger(self._logged)

    def _logged(self, query: Any) -> None:
        if "alert_events" in query.query:
            self.sent.append(query.query)

    async def count(self) -> int:
        """How many were sent since the last count (the logger is called soon after each)."""
        for _ in range(3):
            await asyncio.sleep(0)
        sent, self.sent = len(self.sent), []
        return sent


class Raising:
    """One connection's daily alerts through a :class:`RaisedAlerts`, each key new to the
    database (a uuid in it), and the statements each call sent."""

    def __init__(self, pool: asyncpg.Pool, conn: Any) -> None:
        self.pool, self.conn = pool, conn
        self.raised = RaisedAlerts()
        self.statements = Statements(conn)

    @staticmethod
    def key(name: str) -> str:
        return f"limit_utilisation:{ACCOUNT}:{name}-{uuid.uuid4()}:2026-12-04"

    async def send(self, key: str) -> int:
        """Enqueue the alert ``key`` through the memory: the statements it took."""
        await self.statements.count()
        await self.raised.enqueue(self.conn, "limit_utilisation", ACCOUNT, key, dict)
        return await self.statements.count()

    async def events(self, key: str) -> int:
        found: int = await self.pool.fetchval(
            "SELECT count(*) FROM alert_events WHERE dedup_key = $1", key
        )
        return found


@pytest.fixture
async def raising(pg_pool: asyncpg.Pool) -> AsyncIterator[Raising]:
    async with pg_pool.acquire() as conn:
        yield Raising(pg_pool, conn)


async def test_an_alert_appended_outside_a_transaction_is_not_sent_again(
    raising: Raising,
) -> None:
    key = raising.key("appended")
    assert await raising.send(key) == 1
    assert [await raising.send(key) for _ in range(3)] == [0, 0, 0]
    assert await raising.events(key) == 1


async def test_one_appended_in_a_transaction_that_rolls_back_is_sent_again(
    raising: Raising,
) -> None:
    key = raising.key("rolled-back")
    transaction = raising.conn.transaction()
    await transaction.start()
    assert await raising.send(key) == 1
    await transaction.rollback()
    assert await raising.events(key) == 0
    assert await raising.send(key) == 1
    assert await raising.events(key) == 1


async def test_one_another_replica_appended_is_known_after_one_conflict(
    raising: Raising, pg_pool: asyncpg.Pool
) -> None:
    key = raising.key("elsewhere")
    async with pg_pool.acquire() as other:
        assert await outbox.enqueue(other, "limit_utilisation", ACCOUNT, {}, dedup_key=key)
    async with raising.conn.transaction():  # a conflict proves the key committed, even in one
        assert await raising.send(key) == 1
    assert await raising.send(key) == 0
    assert await raising.events(key) == 1


async def test_the_memory_is_bounded(raising: Raising) -> None:
    raising.raised = RaisedAlerts(limit=2)
    keys = [raising.key(f"bounded-{n}") for n in range(3)]
    assert [await raising.send(key) for key in keys] == [1, 1, 1]
    assert keys[2] in raising.raised
    assert keys[0] not in raising.raised
    assert keys[1] not in raising.raised


BURSTING = "5WA00043"


def _burst_settings(window: float) -> AlertSettings:
    return AlertSettings(rejection_burst_count=5, rejection_burst_window_seconds=window)


async def _left_in_window(conn: Any, window: float) -> float:
    """Seconds left in the database's current burst window."""
    left: float = await conn.fetchval(
        "SELECT $1::float8 * (floor(extract(epoch FROM now())::float8 / $1::float8) + 1)"
        " - extract(epoch FROM now())::float8",
        window,
    )
    return left


async def _burst(raising: Raising, settings: AlertSettings) -> int:
    """The burst check of one rejection through the memory: the statements it took."""
    await raising.statements.count()
    payload = {"codes": "max_single_trade"}
    await raising.raised.rejection_burst(raising.conn, BURSTING, settings, lambda: payload)
    return await raising.statements.count()


async def test_a_burst_alert_is_not_checked_again_until_its_window_ends(
    raising: Raising,
) -> None:
    settings = _burst_settings(window=3.0)
    await record_copies(raising.conn, BURSTING, "reject", 5)
    if await _left_in_window(raising.conn, 3.0) < 1.0:  # appended at a window's very end
        await asyncio.sleep(1.0)
    assert await _burst(raising, settings) == 1
    bursts = "SELECT count(*) FROM alert_events WHERE kind = 'rejection_burst' AND account_id = $1"
    assert await raising.conn.fetchval(bursts, BURSTING) == 1
    assert [await _burst(raising, settings) for _ in range(3)] == [0, 0, 0]
    await asyncio.sleep(await _left_in_window(raising.conn, 3.0) + 0.05)
    assert await _burst(raising, settings) == 1  # a new window: checked again


async def test_a_burst_alert_appended_in_a_transaction_is_checked_again(
    raising: Raising,
) -> None:
    settings = _burst_settings(window=60.0)
    await record_copies(raising.conn, BURSTING, "reject", 5)
    async with raising.conn.transaction():
        assert await _burst(raising, settings) == 1
    assert await _burst(raising, settings) == 1
