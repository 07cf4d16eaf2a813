"""The background loops (reconciler, status job) stop when cancelled, even when they were
woken just before: on Python 3.11 ``asyncio.wait_for`` swallowed that cancellation and the
loop ran on, so a gatekeeper's shutdown waited forever (seen as a test hang in CI)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import aiohttp
import asyncpg
import pytest

from gatekeeper.metrics import Metrics
from gatekeeper.reconciler import Reconciler
from gatekeeper.status_job import StatusJob
from gatekeeper.waits import wait_event
from tests.fixtures.gate import make_settings

Loop = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


async def _stops_after_wake(loop: Loop, settle_steps: int) -> bool:
    """Cancel the loop ``settle_steps`` loop iterations after waking it; True if it ended."""
    wake = asyncio.Event()
    task = asyncio.create_task(loop(wake))
    await asyncio.sleep(0.05)  # in its wait
    wake.set()
    for _ in range(settle_steps):
        await asyncio.sleep(0)
    task.cancel()
    done, _ = await asyncio.wait({task}, timeout=2)
    if not done:  # the swallowed cancellation: stop it for good before failing
        task.cancel()
        await asyncio.wait({task}, timeout=2)
    return bool(done)


class _Reconciler(Reconciler):
    async def run_once(self) -> int:
        return 0


class _StatusJob(StatusJob):
    async def run_once(self) -> None:
        return None


@pytest.mark.parametrize("settle_steps", range(5))
async def test_wait_event_keeps_a_cancellation(settle_steps: int) -> None:
    async def loop(wake: asyncio.Event) -> None:
        while True:
            wake.clear()
            await wait_event(wake, 10)

    assert await _stops_after_wake(loop, settle_steps)


async def test_wait_event_answers_whether_it_was_set() -> None:
    wake = asyncio.Event()
    assert not await wait_event(wake, 0.01)
    wake.set()
    assert await wait_event(wake, 10)


@pytest.mark.parametrize("settle_steps", range(5))
async def test_the_reconciler_stops_when_cancelled_just_after_a_wake(
    settle_steps: int, pg_pool: asyncpg.Pool, database_url: str, redis_url: str
) -> None:
    settings = make_settings("http://127.0.0.1:9", database_url, redis_url)
    risk = settings.risk.model_copy(update={"reconcile_interval_seconds": 10.0})
    async with aiohttp.ClientSession() as session:
        reconciler = _Reconciler(pg_pool, session, settings.model_copy(update={"risk": risk}))

        async def loop(wake: asyncio.Event) -> None:
            reconciler.wake = wake
            await reconciler.run()

        assert await _stops_after_wake(loop, settle_steps)


@pytest.mark.parametrize("settle_steps", range(5))
async def test_the_status_job_stops_when_cancelled_just_after_a_wake(
    settle_steps: int, pg_pool: asyncpg.Pool
) -> None:
    job = _StatusJob(pg_pool, Metrics.create())
    assert await _stops_after_wake(lambda wake: job.run(10.0, wake), settle_steps)
