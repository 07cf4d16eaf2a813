"""Typed application keys: the one place that says what lives on an aiohttp Application."""

from __future__ import annotations

import aiohttp
import asyncpg
from aiohttp import web
from redis.asyncio import Redis

from gatekeeper.engine import Engine
from gatekeeper.metrics import Metrics
from gatekeeper.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", Metrics)
# The single pooled client session used to talk to the broker (proxy listener only).
UPSTREAM = web.AppKey("upstream", aiohttp.ClientSession)
# Shared by both listeners of one process; opened and closed by gatekeeper.web.server.
PG_POOL = web.AppKey("pg_pool", asyncpg.Pool)
REDIS = web.AppKey("redis", Redis)
# The risk engine of the order path (proxy listener only).
ENGINE = web.AppKey("engine", Engine)
