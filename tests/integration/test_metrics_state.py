"""Metrics that show the state: the stop gauges (per account and global) for stops of every
origin (the engine's through the proxy, the admin API's at once, the CLI's through the status
job), one decision count per decision, and the utilisation gauges as the decision's figures
say."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import aiohttp
import asyncpg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gatekeeper.adapters import users
from gatekeeper.auth import Role
from gatekeeper.metrics import Metrics
from gatekeeper.settings import AdminSettings
from gatekeeper.status_job import StatusJob
from tests.fixtures.admin import run_cli
from tests.fixtures.gate import Gate, make_settings, start_gatekeeper
from tests.fixtures.orders import Bot, order, protect, state_shows

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(gate: Gate) -> Samples:
    """Every sample of the admin listener's /metrics, keyed by name and labels."""
    async with aiohttp.ClientSession() as session, session.get(gate.admin_url + "/metrics") as r:
        assert r.status == 200
        text = await r.text()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


async def eventually(gate: Gate, name: str, expected: float, **labels: str) -> Samples:
    """/metrics once ``name{labels}`` reads ``expected`` (the status job runs every 0.1 s)."""
    for _ in range(100):
        samples = await scrape(gate)
        if value(samples, name, **labels) == expected:
            return samples
        await asyncio.sleep(0.05)
    raise AssertionError(f"{name}{labels} = {value(samples, name, **labels)}, not {expected}")


@pytest.fixture
async def fast_gatekeeper(
    paper_broker: Any, database_url: str, redis_url: str
) -> AsyncIterator[Gate]:
    """The gatekeeper in front of the paper broker, its status job running every 0.1 s."""
    settings = make_settings(paper_broker.url, database_url, redis_url)
    admin = AdminSettings(host="127.0.0.1", port=0, status_refresh_seconds=0.1)
    async with start_gatekeeper(settings.model_copy(update={"admin": admin})) as gate:
        yield gate


async def _breach_daily_loss(bot: Bot, paper_broker: Any, redis_url: str) -> None:
    """As test_order_daily_loss: BIL falls, day P&L -5.54 %, the engine stops the account."""
    assert (await bot.place(order("AAPL", 1, "150.00"))).status == 201
    paper_broker.book.set_quote("BIL", Decimal("69.99"), Decimal("70.01"))
    await state_shows(redis_url, bot.account, "94465.00")
    answer = await bot.place(order("AAPL", 1, "150.00"))
    assert "max_daily_loss" in answer.codes


async def test_a_system_stop_shows_at_once_on_the_stop_gauge(
    bot: Bot, gatekeeper: Gate, pg_pool: asyncpg.Pool, paper_broker: Any, redis_url: str
) -> None:
    await protect(pg_pool, bot.account)
    await _breach_daily_loss(bot, paper_broker, redis_url)

    # Set by the decision itself: the status job's next run is 15 s away.
    samples = await scrape(gatekeeper)
    assert value(samples, "gatekeeper_emergency_stop_active", account=bot.account) == 1
    assert value(samples, "gatekeeper_day_pnl_ratio", account=bot.account) == pytest.approx(
        -0.0554, abs=1e-4
    )
    assert value(
        samples, "gatekeeper_limit_utilisation_ratio", account=bot.account, limit="max_daily_loss"
    ) == pytest.approx(5.535 / 5, abs=1e-3)


async def test_stops_of_every_origin_are_counted_from_the_database(
    bot: Bot,
    fast_gatekeeper: Gate,
    pg_pool: asyncpg.Pool,
    paper_broker: Any,
    database_url: str,
    redis_url: str,
) -> None:
    account = bot.account
    bot.base_url = fast_gatekeeper.proxy_url
    await protect(pg_pool, account, emergency_stop_mode="reduce_only")
    await eventually(fast_gatekeeper, "gatekeeper_emergency_stop_active", 0, account=account)
    counter = "gatekeeper_emergency_stop_events_total"

    await _breach_daily_loss(bot, paper_broker, redis_url)
    await eventually(fast_gatekeeper, counter, 1, scope="account", event="triggered", via="system")

    cleared = await run_cli(
        database_url, "protections", "clear", account, "--by", "ops", "--confirm"
    )
    assert cleared.returncode == 0, cleared.stderr
    samples = await eventually(
        fast_gatekeeper, "gatekeeper_emergency_stop_active", 0, account=account
    )
    assert value(samples, counter, scope="account", event="cleared", via="cli") == 1

    # A CLI stop: another process, seen only through the database, by the status job.
    stopped = await run_cli(
        database_url, "protections", "stop", account, "--reason", "drill", "--by", "ops"
    )
    assert stopped.returncode == 0, stopped.stderr
    samples = await eventually(
        fast_gatekeeper, "gatekeeper_emergency_stop_active", 1, account=account
    )
    assert value(samples, counter, scope="account", event="triggered", via="cli") == 1
    assert value(samples, counter, scope="account", event="triggered", via="system") == 1
    assert value(samples, counter, scope="account", event="triggered", via="api") == 0
    assert value(samples, counter, scope="global", event="triggered", via="cli") == 0
    assert value(samples, "gatekeeper_global_emergency_stop_active") == 0


GLOBAL = "gatekeeper_global_emergency_stop_active"
COUNTER = "gatekeeper_emergency_stop_events_total"


async def test_a_global_stop_from_the_cli_is_on_the_gauge_and_counted(
    fast_gatekeeper: Gate, pg_pool: asyncpg.Pool, database_url: str
) -> None:
    await protect(pg_pool, "5WT00001")
    await eventually(fast_gatekeeper, "gatekeeper_emergency_stop_active", 0, account="5WT00001")

    stopped = await run_cli(database_url, "stop", "--all", "--reason", "market halt")
    assert stopped.returncode == 0, stopped.stderr
    samples = await eventually(fast_gatekeeper, GLOBAL, 1)
    await eventually(fast_gatekeeper, COUNTER, 1, scope="global", event="triggered", via="cli")
    # Every account is blocked, but no account's own stop is active: the gauges say which.
    assert value(samples, "gatekeeper_emergency_stop_active", account="5WT00001") == 0

    cleared = await run_cli(database_url, "clear", "--all", "--confirm")
    assert cleared.returncode == 0, cleared.stderr
    await eventually(fast_gatekeeper, GLOBAL, 0)
    samples = await eventually(
        fast_gatekeeper, COUNTER, 1, scope="global", event="cleared", via="cli"
    )
    assert value(samples, COUNTER, scope="account", event="triggered", via="cli") == 0
    assert value(samples, COUNTER, scope="account", event="cleared", via="cli") == 0

    # A fresh process reads the state, not the history.
    fresh = Metrics.create()
    await StatusJob(pg_pool, fresh).run_once()
    assert fresh.registry.get_sample_value(GLOBAL) == 0
    found = fresh.registry.get_sample_value(
        COUNTER, {"scope": "global", "event": "triggered", "via": "cli"}
    )
    assert found == 0


async def _admin_call(gate: Gate, token: str, method: str, body: dict[str, Any]) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            method, gate.admin_url + "/api/v1/emergency_stops", json=body, headers=headers
        ) as answer,
    ):
        await answer.read()
        return answer.status


async def test_a_global_stop_on_the_admin_api_shows_at_once_on_that_replica(
    gatekeeper: Gate, pg_pool: asyncpg.Pool
) -> None:
    await protect(pg_pool, "5WT00001")
    async with pg_pool.acquire() as conn:
        user = await users.create_user(conn, "ops@example.com")
        token, _ = await users.create_token(conn, user, Role.ADMIN, timedelta(hours=1))
    async with pg_pool.acquire() as blocker, blocker.transaction():
        # The status job reads risk_decisions for each protected account: while this lock is
        # held it cannot run, so only the admin API itself can set the gauge.
        await blocker.execute("LOCK TABLE risk_decisions IN ACCESS EXCLUSIVE MODE")
        body = {"all": True, "reason": "drill"}
        assert await _admin_call(gatekeeper, token, "POST", body) == 200
        assert value(await scrape(gatekeeper), GLOBAL) == 1
        clear = {"all": True, "confirm": "all"}
        assert await _admin_call(gatekeeper, token, "DELETE", clear) == 200
        samples = await scrape(gatekeeper)
        assert value(samples, GLOBAL) == 0
        assert value(samples, COUNTER, scope="global", event="triggered", via="api") == 0
    # Once the status job runs (woken by the writes), it counts both from the database.
    await eventually(gatekeeper, COUNTER, 1, scope="global", event="triggered", via="api")
    samples = await eventually(gatekeeper, COUNTER, 1, scope="global", event="cleared", via="api")
    assert value(samples, GLOBAL) == 0


async def test_one_decision_is_counted_once_whatever_its_violations(
    bot: Bot, gatekeeper: Gate, pg_pool: asyncpg.Pool
) -> None:
    await protect(pg_pool, bot.account)
    registry = gatekeeper.metrics.registry
    # 1,000 AAPL (150,000.00 of 100,000.00 NLV): too big a trade, too little cash left, ...
    rejected = await bot.place(order("AAPL", 1000, "150.00"))
    assert rejected.status == 422
    assert len(rejected.codes) >= 3
    allowed = await bot.place(order("AAPL", 1, "150.00"))
    assert allowed.status == 201

    def sample(name: str, **labels: str) -> float:
        found = registry.get_sample_value(name, labels)
        return 0.0 if found is None else found

    assert sample("gatekeeper_decisions_total", verdict="reject") == 1
    assert sample("gatekeeper_decisions_total", verdict="allow") == 1
    per_code = sum(
        sample("gatekeeper_risk_decisions_total", verdict="reject", code=code)
        for code in rejected.codes
    )
    assert per_code == len(rejected.codes)


async def test_utilisation_gauges_show_the_decision_figures(
    bot: Bot, gatekeeper: Gate, pg_pool: asyncpg.Pool
) -> None:
    await protect(
        pg_pool,
        bot.account,
        max_portfolio_exposure_percentage=Decimal(80),
        max_position_concentration_percentage=Decimal(40),
        cash_reserve_percentage=Decimal(30),
        max_daily_trades=20,
    )
    answer = await bot.place(order("AAPL", 10, "150.00"))
    assert answer.status == 201
    detail = await pg_pool.fetchval("SELECT detail FROM risk_decisions WHERE verdict = 'allow'")
    figures = {k: Decimal(v) for k, v in json.loads(detail)["figures"].items() if _is_number(v)}
    expected = {
        "max_portfolio_exposure": figures["exposure_after_pct"] / 80,
        "max_position_concentration": figures["largest_concentration_pct"] / 40,
        "cash_reserve": (100 - figures["cash_after_pct"]) / 70,
        "max_daily_trades": Decimal(1) / 20,
    }

    def gauges(registry: Any) -> dict[str, float | None]:
        labels = {"account": bot.account}
        found = {
            limit: registry.get_sample_value(
                "gatekeeper_limit_utilisation_ratio", {**labels, "limit": limit}
            )
            for limit in expected
        }
        found["trades"] = registry.get_sample_value("gatekeeper_trades_today", labels)
        found["limit"] = registry.get_sample_value("gatekeeper_daily_trades_limit", labels)
        found["headroom"] = registry.get_sample_value(
            "gatekeeper_cash_reserve_headroom_ratio", labels
        )
        return found

    want: dict[str, float | None] = {k: float(v) for k, v in expected.items()}
    want |= {"trades": 1, "limit": 20, "headroom": float((figures["cash_after_pct"] - 30) / 100)}
    assert gauges(gatekeeper.metrics.registry) == pytest.approx(want)

    # The status job reads the same from Postgres (a fresh registry: nothing carried over).
    fresh = Metrics.create()
    await StatusJob(pg_pool, fresh).run_once()
    assert gauges(fresh.registry) == pytest.approx(want)
    assert (
        fresh.registry.get_sample_value(
            "gatekeeper_emergency_stop_active", {"account": bot.account}
        )
        == 0
    )


def _is_number(text: object) -> bool:
    try:
        Decimal(str(text))
    except ArithmeticError:
        return False
    return text is not None
