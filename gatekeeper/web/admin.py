"""The admin listener: health, readiness, metrics, the admin API and its OpenAPI document."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gatekeeper.adapters.migrations import migration_status
from gatekeeper.metrics import Metrics
from gatekeeper.settings import Settings
from gatekeeper.status_job import add_status_job
from gatekeeper.web import keys
from gatekeeper.web.admin_api import add_admin_api
from gatekeeper.web.openapi import add_openapi
from gatekeeper.web.render import errors_middleware

log = logging.getLogger(__name__)

READY_CHECK_TIMEOUT_SECONDS = 2.0


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers. Never touches dependencies."""
    return web.json_response({"status": "ok"})


async def _check_postgres(app: web.Application) -> str:
    async with app[keys.PG_POOL].acquire() as conn:
        status = await migration_status(conn)
    if status.changed or status.missing:
        return "schema differs from sql/ (edited or missing migration files)"
    if status.pending:
        return f"{len(status.pending)} migration(s) pending: run `gatekeeper migrate`"
    return "ok"


async def _check_redis(app: web.Application) -> str:
    await app[keys.REDIS].ping()
    return "ok"


async def readyz(request: web.Request) -> web.Response:
    """Readiness: Postgres reachable with migrations current, Redis reachable."""
    checks: dict[str, str] = {}
    for name, check in (("postgres", _check_postgres), ("redis", _check_redis)):
        try:
            async with asyncio.timeout(READY_CHECK_TIMEOUT_SECONDS):
                checks[name] = await check(request.app)
        except TimeoutError:
            checks[name] = "timeout"
        except Exception as error:  # readiness reports, it does not crash
            checks[name] = f"unavailable ({type(error).__name__})"
    ready = all(result == "ok" for result in checks.values())
    return web.json_response(
        {"status": "ready" if ready else "not_ready", "checks": checks},
        status=200 if ready else 503,
    )


async def metrics_handler(request: web.Request) -> web.Response:
    registry = request.app[keys.METRICS].registry
    return web.Response(
        body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
    )


def create_admin_app(settings: Settings, metrics: Metrics) -> web.Application:
    """The operators' listener. Backends (PG_POOL, REDIS) are set by the server."""
    app = web.Application(middlewares=[errors_middleware], client_max_size=256 * 1024)
    app[keys.SETTINGS] = settings
    app[keys.METRICS] = metrics
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_handler)
    add_admin_api(app)
    add_openapi(app)
    add_status_job(app)  # per-account gauges and stop events, from Postgres
    return app
