"""Typed application keys: the one place that says what lives on an aiohttp Application."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web
from redis.asyncio import Redis

from gatekeeper.adapters.broker import BrokerClient
from gatekeeper.alerts.worker import AlertWorker
from gatekeeper.errors import GatekeeperError
from gatekeeper.metrics import Metrics
from gatekeeper.orderpath.engine import Engine
from gatekeeper.orderpath.handler import OrderPath
from gatekeeper.reconciler import Reconciler
from gatekeeper.settings import Settings
from gatekeeper.stop_actions import StopActions

SETTINGS = web.AppKey("settings", Settings)
METRICS = web.AppKey("metrics", Metrics)
# The proxy listener's request counter and duration series by (route kind, method, status
# class): labels() looked up once per combination (a handful), not on every request.
REQUEST_METRICS: web.AppKey[dict[tuple[str, str, int], tuple[Any, Any]]] = web.AppKey(
    "request_metrics", dict
)
# The pooled client sessions to the broker (proxy listener only): pass-through traffic's,
# and the order path's own (account state, instruments, quotes, order forwards), so that
# pass-through traffic cannot take the connections orders need.
UPSTREAM = web.AppKey("upstream", aiohttp.ClientSession)
ORDER_UPSTREAM = web.AppKey("order_upstream", aiohttp.ClientSession)
# The pass-through traffic's broker client (on UPSTREAM).
PASSTHROUGH_BROKER = web.AppKey("passthrough_broker", BrokerClient)
# Shared by both listeners of one process; opened and closed by gatekeeper.web.server.
PG_POOL = web.AppKey("pg_pool", asyncpg.Pool)
REDIS = web.AppKey("redis", Redis)
# The risk engine of the order path (proxy listener only).
ENGINE = web.AppKey("engine", Engine)
# What a committed emergency stop does next: cancel working orders (proxy listener's; the
# admin listener shares it).
STOP_ACTIONS = web.AppKey("stop_actions", StopActions)
# Delivers alerts and holds the order path's risk-path failures (proxy listener only).
ALERTS = web.AppKey("alerts", AlertWorker)
# Resolves orders whose broker answer was lost (proxy listener only).
RECONCILER = web.AppKey("reconciler", Reconciler)
# The order path (proxy listener only): checks, records and forwards order requests.
ORDER_PATH = web.AppKey("order_path", OrderPath)
# Records the refusal of a request on a connection beyond the connection limits
# (gatekeeper.web.connections) and answers it: an order route's 503 with its decision row;
# None for any other route (proxy listener only; elsewhere the plain 503).
RefusalRecorder = Callable[[web.Request, GatekeeperError], Awaitable[web.StreamResponse | None]]
RECORD_REFUSAL: web.AppKey[RefusalRecorder] = web.AppKey("record_refusal")
