"""The reconciler outlives a pass that fails in any way, and goes on reconciling."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import asyncpg
import pytest

from gatekeeper.reconciler import Reconciler
from tests.fixtures.gate import make_settings


class FailingOnce(Reconciler):
    """The real reconciler, whose first pass fails with an error nobody expected."""

    passes = 0
    third = asyncio.Event()

    async def run_once(self) -> int:
        self.passes += 1
        if self.passes == 3:
            self.third.set()
        if self.passes == 1:
            raise RuntimeError("a bug")
        return await super().run_once()


async def test_a_failed_pass_is_logged_and_the_next_one_runs(
    pg_pool: asyncpg.Pool, database_url: str, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings("http://127.0.0.1:9", database_url, redis_url)
    risk = settings.risk.model_copy(update={"reconcile_interval_seconds": 0.05})
    async with aiohttp.ClientSession() as session:
        reconciler = FailingOnce(pg_pool, session, settings.model_copy(update={"risk": risk}))
        with caplog.at_level(logging.ERROR, logger="gatekeeper.reconciler"):
            task = asyncio.create_task(reconciler.run())
            try:
                async with asyncio.timeout(5):
                    await reconciler.third.wait()
                assert not task.done()  # still running after the failed pass
            finally:
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
    assert "reconciler: pass failed: RuntimeError" in caplog.text
