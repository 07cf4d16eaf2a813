"""Cleanup context of the proxy app: the alert worker (gatekeeper.alerts) runs for as long
as the app, and the engine enqueues the alerts of each decision."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from gatekeeper.alerts.triggers import decision_hook
from gatekeeper.alerts.worker import AlertWorker
from gatekeeper.web import keys


async def alert_worker(app: web.Application) -> AsyncIterator[None]:
    """Start the delivery worker (with its own client session: webhooks are not the broker)
    and hook the alerts into the engine; stop the worker when the app stops."""
    settings = app[keys.SETTINGS].alerts
    app[keys.ENGINE].after_decision = decision_hook(settings)
    async with aiohttp.ClientSession(
        trust_env=False, cookie_jar=aiohttp.DummyCookieJar()
    ) as session:
        worker = app[keys.ALERTS] = AlertWorker(
            app[keys.PG_POOL], settings, app[keys.METRICS], session
        )
        task = asyncio.create_task(worker.run(), name="gatekeeper-alerts")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
