"""Liveness and readiness of the admin listener."""

from __future__ import annotations

import asyncio

import aiohttp

from gatekeeper.embedded import EmbeddedRedis
from tests.fixtures.gate import Gate, make_settings, start_gatekeeper


async def get(url: str) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.json()


async def test_ready_when_postgres_is_migrated_and_redis_answers(echo_gatekeeper: Gate) -> None:
    assert await get(echo_gatekeeper.admin_url + "/healthz") == (200, {"status": "ok"})
    status, body = await get(echo_gatekeeper.admin_url + "/readyz")
    assert (status, body) == (200, {"status": "ready", "checks": {"postgres": "ok", "redis": "ok"}})


async def test_not_ready_with_pending_migrations(
    empty_database_url: str, redis_url: str, unused_tcp_port: int
) -> None:
    settings = make_settings(f"http://127.0.0.1:{unused_tcp_port}", empty_database_url, redis_url)
    async with start_gatekeeper(settings) as gate:
        status, body = await get(gate.admin_url + "/readyz")
        assert status == 503
        checks = body["checks"]
        assert isinstance(checks, dict)
        assert "pending: run `gatekeeper migrate`" in checks["postgres"]
        assert checks["redis"] == "ok"
        # Liveness does not depend on the backends.
        assert (await get(gate.admin_url + "/healthz"))[0] == 200


async def test_not_ready_when_redis_is_down(
    database_url: str, private_redis: EmbeddedRedis, unused_tcp_port: int
) -> None:
    settings = make_settings(f"http://127.0.0.1:{unused_tcp_port}", database_url, private_redis.url)
    async with start_gatekeeper(settings) as gate:
        assert (await get(gate.admin_url + "/readyz"))[0] == 200
        await asyncio.to_thread(private_redis.stop)
        status, body = await get(gate.admin_url + "/readyz")
        assert status == 503
        checks = body["checks"]
        assert isinstance(checks, dict)
        assert checks["postgres"] == "ok"
        assert checks["redis"].startswith("unavailable")
