"""One fault scenario's world: private Postgres and Redis, the paper broker, a fault proxy in
front of each, gatekeepers (in this process, or as ``gatekeeper serve`` processes to kill)
configured with the proxies' addresses, bots whose every answer is kept, and the captured
logs, so the invariant checker (``tests/faults/invariants.py``) can judge what happened.

The checker reads Postgres directly (``FaultStack.pool``), never through a proxy.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg

from gatekeeper.adapters.protection_model import Protection
from gatekeeper.embedded import EmbeddedPostgres, EmbeddedRedis
from gatekeeper.settings import ProxySettings, RiskSettings, Settings
from tests.faults.invariants import Evidence, Report, Seen, check
from tests.faults.toxiproxy import FaultProxy
from tests.fixtures.gate import Gate, make_settings, start_gatekeeper
from tests.fixtures.orders import protect
from tests.fixtures.paper import PaperBroker
from tests.processes import ROOT, base_environment, free_ports, wait_http

DECISION_HEADER = "X-Gatekeeper-Decision-Id"
# Fast timeouts, so a scenario's faults resolve in seconds (every one overridable).
PROXY_DEFAULTS: dict[str, Any] = {
    "connect_timeout_seconds": 1.0,
    "read_timeout_seconds": 1.5,
    "total_timeout_seconds": 3.0,
}
# The account streamer is a second, long-lived path to the broker that these scenarios do not
# aim at (and whose shutdown could wait aiohttp's 60 s for its socket behind a slowed link):
# off here, polled state only.
if "account_streamer" in ProxySettings.model_fields:
    PROXY_DEFAULTS["account_streamer"] = False
RISK_DEFAULTS: dict[str, Any] = {
    "reconcile_interval_seconds": 0.2,
    "reconcile_grace_seconds": 2.0,
    "reconcile_not_placed_after_seconds": 2.0,
}
# A spawned gatekeeper's order deadline: as make_settings gives the in-process ones (this
# machine runs many tests at once); the burst scenarios set the default's own.
if "order_deadline_seconds" in RiskSettings.model_fields:
    SPAWN_RISK: dict[str, Any] = {"order_deadline_seconds": 10.0}
else:  # before issue 11 item 3
    SPAWN_RISK = {}


def via(url: str, proxy: FaultProxy) -> str:
    """``url`` with its host and port replaced by the proxy's (user and path kept)."""
    parts = urlsplit(url)
    user = parts.netloc.rpartition("@")[0]
    netloc = f"{user}@{proxy.address}" if user else proxy.address
    return urlunsplit(parts._replace(netloc=netloc))


async def eventually(
    probe: Callable[[], Awaitable[bool]], within: float, every: float = 0.05
) -> float:
    """Poll ``probe`` until it is true; the seconds it took (AssertionError past ``within``)."""
    started = time.monotonic()
    while not await probe():
        if time.monotonic() - started > within:
            raise AssertionError(f"not true within {within} s")
        await asyncio.sleep(every)
    return time.monotonic() - started


class _Captured(logging.Handler):
    """Every log record, kept as is and formatted (with its extra fields and traceback) only
    when the checker searches it for planted secrets (I5): nothing slow on the event loop."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def text(self) -> str:
        """All of them as text (blocking: run it in a thread)."""
        return "\n".join(
            self.format(r) + " " + json.dumps(r.__dict__, default=str) for r in list(self.records)
        )


@dataclass
class FaultBot:
    """A bot that keeps every answer it got (``Seen``) in the scenario's evidence."""

    url: str
    auth: dict[str, str]
    account: str
    session: aiohttp.ClientSession
    evidence: Evidence

    async def place(
        self, body: dict[str, Any], submission: str, *, dry_run: bool = False, within: float = 20
    ) -> Seen:
        headers = {**self.auth, "Content-Type": "application/json"}
        path = f"{self.url}/accounts/{self.account}/orders" + ("/dry-run" if dry_run else "")
        try:
            async with self.session.post(
                path,
                data=json.dumps(body),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=within),
            ) as response:
                text = await response.text()
                try:
                    code = json.loads(text).get("error", {}).get("code")
                except (ValueError, AttributeError):
                    code = None
                seen = Seen(
                    submission,
                    response.status,
                    response.headers.get(DECISION_HEADER),
                    code,
                    text + json.dumps(dict(response.headers)),
                )
        except (aiohttp.ClientError, TimeoutError) as error:
            seen = Seen(submission, None, None, None, repr(error))
        self.evidence.answers.append(seen)
        return seen


@dataclass
class GatekeeperProcess:
    """``gatekeeper serve`` as a child process (its log kept in a file)."""

    process: asyncio.subprocess.Process
    proxy_url: str
    admin_url: str
    log_path: Path

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.terminate()
        await self.process.wait()


@dataclass
class FaultStack:
    postgres: EmbeddedPostgres
    redis: EmbeddedRedis
    paper: PaperBroker
    pg_proxy: FaultProxy
    redis_proxy: FaultProxy
    broker_proxy: FaultProxy
    pool: asyncpg.Pool
    auth: dict[str, str]
    session: aiohttp.ClientSession
    log_dir: Path
    evidence: Evidence = field(default_factory=Evidence)
    captured: _Captured = field(default_factory=_Captured)
    processes: list[GatekeeperProcess] = field(default_factory=list)

    @property
    def account(self) -> str:
        return self.paper.account_number

    def settings(self, proxy: dict[str, Any] | None = None, **risk: Any) -> Settings:
        """A gatekeeper's settings: every backend through its fault proxy, fast timeouts."""
        settings = make_settings(
            via(self.paper.url, self.broker_proxy),
            via(self.postgres.url, self.pg_proxy),
            via(self.redis.url, self.redis_proxy),
            **{**PROXY_DEFAULTS, **(proxy or {})},
        )
        merged = settings.risk.model_copy(update={**RISK_DEFAULTS, **risk})
        return settings.model_copy(update={"risk": merged})

    @asynccontextmanager
    async def gatekeeper(self, settings: Settings | None = None) -> AsyncIterator[Gate]:
        """A gatekeeper in this process; its metrics text is kept for I5 when it stops."""
        async with start_gatekeeper(settings or self.settings()) as gate:
            try:
                yield gate
            finally:
                await self.keep_metrics(gate.admin_url)

    async def keep_metrics(self, admin_url: str) -> None:
        try:
            async with self.session.get(admin_url + "/metrics") as response:
                self.evidence.texts[f"metrics {admin_url}"] = await response.text()
        except aiohttp.ClientError:
            pass

    def bot(self, url: str) -> FaultBot:
        return FaultBot(url, self.auth, self.account, self.session, self.evidence)

    async def protect(self, **limits: Any) -> Protection:
        """A protection on the account; its trade and single-trade limits go to I3."""
        limits = {"max_daily_trades": 20, "max_position_concentration_percentage": 100, **limits}
        protection = await protect(self.pool, self.account, **limits)
        self.evidence.max_daily_trades = limits["max_daily_trades"]
        nlv = self.paper.book.valuation(self.account).net_liquidating_value
        share = Decimal(str(limits.get("max_single_trade_percentage", 10)))
        self.evidence.max_order_value = nlv * share / 100
        return protection

    async def spawn(self, **env: str) -> GatekeeperProcess:
        """``gatekeeper serve`` through the proxies (settings as in ``settings()``)."""
        proxy_port, admin_port = free_ports(2)
        full = {
            **base_environment(via(self.postgres.url, self.pg_proxy),
                               via(self.redis.url, self.redis_proxy)),
            "GATEKEEPER_LOG_LEVEL": "INFO",
            "GATEKEEPER_PROXY__PORT": str(proxy_port),
            "GATEKEEPER_ADMIN__PORT": str(admin_port),
            "GATEKEEPER_PROXY__UPSTREAM_URL": via(self.paper.url, self.broker_proxy),
        }  # fmt: skip
        for name, value in PROXY_DEFAULTS.items():
            full[f"GATEKEEPER_PROXY__{name.upper()}"] = str(value).lower()
        for name, value in {**RISK_DEFAULTS, **SPAWN_RISK}.items():
            full[f"GATEKEEPER_RISK__{name.upper()}"] = str(value)
        full.update(env)
        log_path = self.log_dir / f"gatekeeper-{len(self.processes)}.log"
        with log_path.open("ab") as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "gatekeeper.cli", "serve",
                cwd=ROOT, env=full, stdout=log, stderr=log,
            )  # fmt: skip
        running = GatekeeperProcess(
            process,
            f"http://127.0.0.1:{proxy_port}",
            f"http://127.0.0.1:{admin_port}",
            log_path,
        )
        self.processes.append(running)
        await wait_http(running.admin_url + "/healthz", process=process, log=log_path)
        return running

    async def outcome(self, decision_id: str) -> str | None:
        """A decision's outcome now (its newest row), None while it has none."""
        value: str | None = await self.pool.fetchval(
            "SELECT outcome FROM order_outcomes WHERE decision_id = $1::uuid"
            " ORDER BY id DESC LIMIT 1",
            decision_id,
        )
        return value

    async def recorded_outcome(self, decision_id: str, within: float = 5.0) -> str | None:
        """A decision's outcome once it has one: a relayed answer's row is written right
        after the answer (gatekeeper.orderpath.outcome_writes)."""
        await eventually(lambda: self._has_outcome(decision_id), within)
        return await self.outcome(decision_id)

    async def _has_outcome(self, decision_id: str) -> bool:
        return await self.outcome(decision_id) is not None

    async def check(self) -> Report:
        texts = self.evidence.texts
        texts["captured logs"] = await asyncio.to_thread(self.captured.text)
        for n, running in enumerate(self.processes):
            texts[f"process log {n}"] = running.log_path.read_text(errors="replace")
        for name in ("postgres", "redis"):
            server = getattr(self, name)
            if server.log_path.exists():
                texts[f"{name} log"] = server.log_path.read_text(errors="replace")
        return await check(self.pool, self.paper.url, self.paper.control_headers, self.evidence)

    async def assert_invariants(self) -> Report:
        """I1-I6 all 0 (the report back, for figures)."""
        report = await self.check()
        assert report.counts == {f"I{n}": 0 for n in range(1, 7)}, report.explain()
        return report


@asynccontextmanager
async def fault_stack(
    paper: PaperBroker,
    auth: dict[str, str],
    postgres: EmbeddedPostgres,
    redis: EmbeddedRedis,
    log_dir: Path,
) -> AsyncIterator[FaultStack]:
    pg_proxy = await FaultProxy("postgres", "127.0.0.1", postgres.port).start()
    redis_proxy = await FaultProxy("redis", "127.0.0.1", redis.port).start()
    broker_proxy = await FaultProxy("broker", *_host_port(paper.url)).start()
    pool = await asyncpg.create_pool(postgres.url, min_size=1, max_size=4)
    captured = _Captured()
    root = logging.getLogger()
    level = root.level
    root.addHandler(captured)
    root.setLevel(logging.INFO)
    try:
        async with aiohttp.ClientSession() as session:
            stack = FaultStack(
                postgres, redis, paper, pg_proxy, redis_proxy, broker_proxy, pool, auth,
                session, log_dir, captured=captured,
            )  # fmt: skip
            stack.evidence.secrets.append(auth["Authorization"].partition(" ")[2])
            try:
                yield stack
            finally:
                for running in stack.processes:
                    await running.stop()
    finally:
        root.removeHandler(captured)
        root.setLevel(level)
        for proxy in (pg_proxy, redis_proxy, broker_proxy):
            await proxy.close()
        pool.terminate()


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    return parts.hostname, parts.port
