"""More of the order path: complex orders, inactive protections, the unknown-account policy,
broker refusals and timeouts (recorded, never retried), metrics."""

from __future__ import annotations

from typing import Any

import aiohttp
import asyncpg

from tests.fixtures.gate import make_settings, start_gatekeeper
from tests.fixtures.orders import Bot, order, outcome_row, protect, received_count


def _otoco(quantity: int) -> dict[str, Any]:
    return {
        "type": "OTOCO",
        "trigger-order": order("AAPL", quantity, "149.00"),
        "orders": [
            order("AAPL", quantity, "160.00", action="Sell to Close"),
            {
                **order("AAPL", quantity, None, action="Sell to Close"),
                "order-type": "Stop",
                "stop-trigger": "140.00",
            },
        ],
    }


async def test_complex_order_counts_once_per_contained_order(
    bot: Bot, pg_pool: asyncpg.Pool, paper_broker: Any
) -> None:
    await protect(pg_pool, bot.account, max_daily_trades=4)
    path = f"/accounts/{bot.account}/complex-orders"
    too_big = await bot.send("POST", path, _otoco(1000))
    assert too_big.status == 422
    assert "max_single_trade" in too_big.codes
    assert (await bot.send("POST", path + "/dry-run", _otoco(1))).status == 201
    placed = await bot.send("POST", path, _otoco(1))
    assert placed.status == 201, placed.body
    again = await bot.send("POST", path, _otoco(1))  # 3 + 3 > 4
    assert again.codes == ["max_daily_trades"]
    one = await bot.place(order("AAPL", 1, "150.00"))  # 3 + 1 = 4
    assert one.status == 201
    assert received_count(paper_broker.book, bot.account) == 2


async def test_inactive_protection_skips_sizing_but_is_recorded(
    bot: Bot, pg_pool: asyncpg.Pool
) -> None:
    await protect(pg_pool, bot.account, active=False, max_single_trade_percentage=5)
    answer = await bot.place(order("AAPL", 1000, "150.00"), dry_run=True)  # E18
    assert answer.status == 201
    row = await pg_pool.fetchrow("SELECT verdict, notes FROM risk_decisions")
    assert row is not None
    assert row["verdict"] == "allow"
    assert "protection_inactive" in row["notes"]


async def test_unknown_accounts_rejected_when_configured(
    paper_broker: Any, paper_auth: dict[str, str], database_url: str, redis_url: str
) -> None:
    settings = make_settings(paper_broker.url, database_url, redis_url)
    risk = settings.risk.model_copy(update={"unknown_account_policy": "reject"})
    settings = settings.model_copy(update={"risk": risk})
    async with start_gatekeeper(settings) as gate, aiohttp.ClientSession() as session:
        bot = Bot(gate.proxy_url, paper_auth, session, paper_broker.account_number)
        answer = await bot.place(order("AAPL", 1, "150.00"))
    assert answer.status == 422
    assert answer.codes == ["no_protection"]
    assert received_count(paper_broker.book, paper_broker.account_number) == 0


async def test_broker_refusal_is_relayed_recorded_and_not_counted(
    bot: Bot, pg_pool: asyncpg.Pool, paper_broker: Any
) -> None:
    await protect(pg_pool, bot.account, max_daily_trades=1)
    paper_broker.book.add_fault(f"/accounts/{bot.account}/orders", status=400, method="POST",
                                times=1)  # fmt: skip
    refused = await bot.place(order("AAPL", 1, "150.00"))
    assert refused.status == 400
    assert refused.body["error"]["code"] == "paper_fault_injected"
    assert refused.headers["X-Gatekeeper-Decision-Id"]
    outcome = await outcome_row(pg_pool, refused.headers["X-Gatekeeper-Decision-Id"])
    assert (outcome["outcome"], outcome["http_status"]) == ("broker_rejected", 400)
    assert (await bot.place(order("AAPL", 1, "150.00"))).status == 201  # not counted


async def test_broker_timeout_counts_the_order_and_never_retries(
    paper_broker: Any,
    paper_auth: dict[str, str],
    database_url: str,
    redis_url: str,
    pg_pool: asyncpg.Pool,
) -> None:
    await protect(pg_pool, paper_broker.account_number, max_daily_trades=1)
    settings = make_settings(paper_broker.url, database_url, redis_url, read_timeout_seconds=1.0)
    paper_broker.book.add_fault(
        f"/accounts/{paper_broker.account_number}/orders", delay_seconds=3, method="POST",
        times=1, after=True,
    )  # fmt: skip
    async with start_gatekeeper(settings) as gate, aiohttp.ClientSession() as session:
        bot = Bot(gate.proxy_url, paper_auth, session, paper_broker.account_number)
        timed_out = await bot.place(order("AAPL", 1, "150.00"))
        assert timed_out.status == 504
        assert received_count(paper_broker.book, bot.account) == 1  # placed, answer lost
        outcome = await pg_pool.fetchval("SELECT outcome FROM order_outcomes ORDER BY id LIMIT 1")
        assert outcome == "unknown"
        again = await bot.place(order("AAPL", 1, "150.00"))
        assert again.codes == ["max_daily_trades"]  # the unknown one counts
        async with session.get(gate.admin_url + "/metrics") as response:
            metrics = await response.text()
    assert received_count(paper_broker.book, paper_broker.account_number) == 1
    assert 'gatekeeper_risk_decisions_total{code="none",verdict="allow"} 1.0' in metrics
    assert (
        'gatekeeper_risk_decisions_total{code="max_daily_trades",verdict="reject"} 1.0' in metrics
    )
    assert "gatekeeper_order_path_duration_seconds_bucket" in metrics


async def test_a_committed_stop_blocks_every_replica(
    paper_broker: Any,
    paper_auth: dict[str, str],
    database_url: str,
    redis_url: str,
    pg_pool: asyncpg.Pool,
) -> None:
    from gatekeeper.adapters import protections as store
    from gatekeeper.adapters.protection_stops import trigger_emergency_stop

    protection = await protect(pg_pool, paper_broker.account_number)
    settings = make_settings(paper_broker.url, database_url, redis_url)
    async with (
        start_gatekeeper(settings) as one,
        start_gatekeeper(settings) as two,
        aiohttp.ClientSession() as session,
    ):
        bots = [
            Bot(g.proxy_url, paper_auth, session, paper_broker.account_number) for g in (one, two)
        ]
        for bot in bots:  # both have the account's state cached now
            assert (await bot.place(order("AAPL", 1, "150.00"), dry_run=True)).status == 201
        async with pg_pool.acquire() as conn:
            await trigger_emergency_stop(
                conn, protection.id, None, reason="ops", triggered_by="ops", mode=None,
                actor=store.Actor("ops", "cli"),
            )  # fmt: skip
        for bot in bots:
            answer = await bot.place(order("AAPL", 1, "150.00"))
            assert answer.codes == ["emergency_stop"]
    assert received_count(paper_broker.book, paper_broker.account_number) == 0
