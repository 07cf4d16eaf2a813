"""Alerts (issue 10, item 3) against a real SMTP server (aiosmtpd) and a real HTTP receiver in
this process: one message per event with the account, the reason and the figures, in every
webhook format; signed bodies; email only where the protection wants it; a limit above 80 %
once per account, limit and day; the global stop once."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import aiohttp
import asyncpg
import pytest

from gatekeeper.adapters import users
from gatekeeper.auth import Role
from tests.fixtures.admin import run_cli
from tests.fixtures.alerts import (
    SmtpSink,
    WebhookSink,
    alert_settings,
    eventually,
    settled,
    with_alerts,
)
from tests.fixtures.gate import Gate, make_settings, start_gatekeeper
from tests.fixtures.orders import Bot, order, protect, state_shows

BASE = "/api/v1/portfolio_protections"
FORMATS = ("/json", "/slack", "/discord", "/ntfy")


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpSink]:
    sink = SmtpSink()
    await sink.start()
    yield sink
    await sink.stop()


@pytest.fixture
async def hooks() -> AsyncIterator[WebhookSink]:
    sink = WebhookSink()
    await sink.start()
    yield sink
    await sink.stop()


@pytest.fixture
async def alerting_gate(
    paper_broker: Any, database_url: str, redis_url: str, smtp: SmtpSink, hooks: WebhookSink
) -> AsyncIterator[Gate]:
    settings = with_alerts(
        make_settings(paper_broker.url, database_url, redis_url), alert_settings(smtp, hooks)
    )
    async with start_gatekeeper(settings) as gate:
        yield gate


async def admin_token(pool: asyncpg.Pool) -> str:
    async with pool.acquire() as conn:
        user = await users.create_user(conn, "ops@example.com")
        token, _ = await users.create_token(conn, user, Role.ADMIN, timedelta(hours=1))
    return token


async def admin_call(gate: Gate, token: str, method: str, path: str, body: Any) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, gate.admin_url + path, json=body, headers=headers) as answer,
    ):
        await answer.read()
        return answer.status


def kinds(hooks: WebhookSink) -> list[str]:
    return [item.json()["kind"] for item in hooks.at("/json")]


async def test_an_automatic_stop_a_manual_stop_and_a_clear_each_alert_once_everywhere(
    alerting_gate: Gate,
    paper_broker: Any,
    paper_auth: dict[str, str],
    pg_pool: asyncpg.Pool,
    smtp: SmtpSink,
    hooks: WebhookSink,
    redis_url: str,
) -> None:
    account = paper_broker.account_number
    protection = await protect(pg_pool, account)
    token = await admin_token(pg_pool)
    async with aiohttp.ClientSession() as session:
        bot = Bot(alerting_gate.proxy_url, paper_auth, session, account)
        assert (await bot.place(order("AAPL", 1, "150.00"))).status == 201
        # BIL (410 held) drops from 83.50 to 70.00: NLV 94,465.00, day P&L -5.54 %.
        paper_broker.book.set_quote("BIL", Decimal("69.99"), Decimal("70.01"))
        await state_shows(redis_url, account, "94465.00")
        breach = await bot.place(order("AAPL", 1, "150.00"))
        assert "max_daily_loss" in breach.codes

    await eventually(lambda: {"stop_triggered", "daily_loss_limit_reached"} <= set(kinds(hooks)))
    stop = next(i for i in hooks.at("/json") if i.json()["kind"] == "stop_triggered")
    text = stop.json()["text"]
    assert account in text
    assert "system (via system)" in text  # who
    assert "-5.54%" in text  # why: the daily-loss rule's reason
    assert "nlv=94465.00" in text  # figures of the decision that triggered it
    assert "day_pnl_pct=-5.54" in text
    assert "Working orders:" in text
    loss = next(i for i in hooks.at("/json") if i.json()["kind"] == "daily_loss_limit_reached")
    assert "nlv=94465.00" in loss.json()["text"]
    assert loss.json()["details"]["figures"]["nlv"].startswith("94465")

    # A manual stop on the admin API is already active: clear it, then stop by hand.
    clear = {"confirm": "true", "cleared_by": "alice"}
    path = f"{BASE}/{protection.id}"
    assert (
        await admin_call(alerting_gate, token, "DELETE", f"{path}/clear_emergency_stop", clear)
        == 200
    )
    stop_body = {"reason": "bot misbehaving", "triggered_by": "bob"}
    assert (
        await admin_call(alerting_gate, token, "POST", f"{path}/emergency_stop", stop_body) == 200
    )
    expected = ["stop_triggered", "stop_cleared", "stop_triggered"]
    await eventually(lambda: [k for k in kinds(hooks) if k.startswith("stop_")] == expected)
    manual = [i for i in hooks.at("/json") if i.json()["kind"] == "stop_triggered"][-1].json()
    assert "bob (via api)" in manual["text"]
    assert "bot misbehaving" in manual["text"]
    assert manual["account"] == account
    cleared = next(i for i in hooks.at("/json") if i.json()["kind"] == "stop_cleared").json()
    assert "alice (via api)" in cleared["text"]

    # Every format got the same events, once each; the signed one verifies.
    await eventually(lambda: all(len(hooks.at(p)) == len(hooks.at("/json")) for p in FORMATS))
    events = len(hooks.at("/json"))
    await eventually(lambda: len(smtp.mails) == events)
    assert all(item.signed for item in hooks.at("/json"))
    assert not any(item.signed for item in hooks.at("/slack"))
    ids = [item.headers["X-Gatekeeper-Alert-Id"] for item in hooks.at("/json")]
    assert len(set(ids)) == len(ids)
    slack = [i.json()["text"] for i in hooks.at("/slack")]
    discord = [i.json()["content"] for i in hooks.at("/discord")]
    ntfy = hooks.at("/ntfy")
    assert any("bot misbehaving" in t for t in slack)
    assert any("bot misbehaving" in t for t in discord)
    assert any(i.headers["Title"] == f"Emergency stop triggered on {account}" for i in ntfy)
    assert any(i.headers["Tags"] == "rotating_light" for i in ntfy)
    assert any("bot misbehaving" in i.body.decode() for i in ntfy)
    subjects = [mail.subject for mail in smtp.mails]
    assert f"[gatekeeper] Emergency stop triggered on {account}" in subjects
    assert any("-5.54%" in mail.text and "nlv=94465.00" in mail.text for mail in smtp.mails)
    assert all(mail.envelope_to == ["oncall@example.com"] for mail in smtp.mails)
    # four webhooks and the email, each marked delivered once
    await settled(
        pg_pool, "SELECT count(*) FROM alert_deliveries WHERE state = 'delivered'", events * 5
    )


async def test_email_only_for_protections_that_want_it(
    alerting_gate: Gate,
    paper_broker: Any,
    pg_pool: asyncpg.Pool,
    smtp: SmtpSink,
    hooks: WebhookSink,
) -> None:
    wants = await protect(pg_pool, paper_broker.account_number, email_alerts_enabled=True)
    quiet = await protect(pg_pool, paper_broker.cash_account_number, email_alerts_enabled=False)
    token = await admin_token(pg_pool)
    for protection in (quiet, wants):
        body = {"reason": "drill", "triggered_by": "carol"}
        path = f"{BASE}/{protection.id}/emergency_stop"
        assert await admin_call(alerting_gate, token, "POST", path, body) == 200

    await eventually(lambda: len(hooks.at("/json")) == 2)
    await eventually(lambda: len(smtp.mails) == 1)
    assert {i.json()["account"] for i in hooks.at("/json")} == {wants.account_id, quiet.account_id}
    assert wants.account_id in smtp.mails[0].subject
    skipped = await pg_pool.fetchval(
        "SELECT count(*) FROM alert_deliveries WHERE channel = 'email' AND state = 'skipped'"
    )
    assert skipped == 1
    assert len(smtp.mails) == 1


def utilisation_alerts(hooks: WebhookSink) -> list[dict[str, Any]]:
    return [i.json() for i in hooks.at("/json") if i.json()["kind"] == "limit_utilisation"]


async def test_a_limit_above_80_percent_alerts_once_per_account_limit_and_day(
    alerting_gate: Gate,
    paper_broker: Any,
    paper_auth: dict[str, str],
    pg_pool: asyncpg.Pool,
    smtp: SmtpSink,
    hooks: WebhookSink,
) -> None:
    account = paper_broker.account_number
    await protect(pg_pool, account, max_daily_trades=5)
    async with aiohttp.ClientSession() as session:
        bot = Bot(alerting_gate.proxy_url, paper_auth, session, account)
        for _ in range(3):  # 3 of 5 trades: 60 %
            assert (await bot.place(order("AAPL", 1, "150.00"))).status == 201
        await asyncio.sleep(0.5)  # several delivery rounds
        assert [
            a for a in utilisation_alerts(hooks) if a["details"]["limit"] == "max_daily_trades"
        ] == []

        assert (await bot.place(order("AAPL", 1, "150.00"))).status == 201  # 4 of 5: 80 %
        await eventually(
            lambda: any(
                a["details"]["limit"] == "max_daily_trades" for a in utilisation_alerts(hooks)
            )
        )
        assert (await bot.place(order("AAPL", 1, "150.00"))).status == 201  # 5 of 5: same day
        await asyncio.sleep(0.5)

    alerts = utilisation_alerts(hooks)
    per_limit = Counter(a["details"]["limit"] for a in alerts)
    assert per_limit["max_daily_trades"] == 1
    assert set(per_limit.values()) == {1}, per_limit  # any other limit: once too
    trades = next(a for a in alerts if a["details"]["limit"] == "max_daily_trades")
    assert trades["account"] == account
    assert trades["title"] == f"max_daily_trades at 80.0% of its limit on {account}"
    assert "Trades today: 4 of 5" in trades["text"]
    assert "alert threshold 80%" in trades["text"]
    assert (
        await pg_pool.fetchval(
            "SELECT count(*) FROM alert_events WHERE kind = 'limit_utilisation'"
            " AND dedup_key LIKE 'limit_utilisation:' || $1 || ':max_daily_trades:%'",
            account,
        )
        == 1
    )
    await eventually(lambda: len(smtp.mails) == len(hooks.at("/json")))
    subjects = [mail.subject for mail in smtp.mails]
    assert subjects.count(f"[gatekeeper] {trades['title']}") == 1


async def test_a_global_stop_alerts_once(
    alerting_gate: Gate,
    paper_broker: Any,
    database_url: str,
    pg_pool: asyncpg.Pool,
    smtp: SmtpSink,
    hooks: WebhookSink,
) -> None:
    # Email is wanted for the global stop when any protection wants email.
    await protect(pg_pool, paper_broker.account_number, email_alerts_enabled=True)
    await protect(pg_pool, paper_broker.cash_account_number, email_alerts_enabled=False)

    stopped = await run_cli(
        database_url, "stop", "--all", "--reason", "exchange outage", "--by", "erin"
    )
    assert stopped.returncode == 0, stopped.stderr
    await eventually(lambda: all(len(hooks.at(p)) == 1 for p in FORMATS))
    await eventually(lambda: len(smtp.mails) == 1)
    await asyncio.sleep(0.5)  # nothing more comes: one event, not one per account

    assert all(len(hooks.at(p)) == 1 for p in FORMATS)
    (alert,) = [i.json() for i in hooks.at("/json")]
    assert alert["kind"] == "stop_triggered"
    assert alert["account"] == "*"
    assert alert["title"] == "Emergency stop triggered on all accounts"
    assert "Account: every account" in alert["text"]
    assert "erin (via cli)" in alert["text"]
    assert "exchange outage" in alert["text"]
    assert "Mode: halt" in alert["text"]
    assert [mail.subject for mail in smtp.mails] == [
        "[gatekeeper] Emergency stop triggered on all accounts"
    ]
    assert "exchange outage" in smtp.mails[0].text
    assert await pg_pool.fetchval("SELECT count(*) FROM alert_events") == 1
