"""``gatekeeper check``: every line ✅ against a migrated database, Redis and the paper broker
(and nothing left behind); ❌ and exit status 1 when Redis is down or a migration is missing;
no password printed. ``--send-test-alert``: one line per channel, against a real SMTP server
(aiosmtpd) and a real HTTP receiver in this process; ❌ when no channel is configured."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from gatekeeper.embedded import EmbeddedRedis
from tests.fixtures.admin import CliResult
from tests.fixtures.alerts import SECRET, SmtpSink, WebhookSink, free_port
from tests.fixtures.orders import protect

PASSWORD = "not-a-real-password-7f3a"
TITLES = (
    "Postgres",
    "Migrations",
    "CHECK constraints",
    "Protections",
    "Emergency stop",
    "Redis",
    "Broker",
    "Order validation",
)


def _with_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is not None:
        return url
    netloc = f"{parts.username or 'postgres'}:{PASSWORD}@{parts.hostname}:{parts.port or 5432}"
    return urlunsplit(parts._replace(netloc=netloc))


async def run_check(
    database_url: str,
    redis_url: str,
    upstream_url: str,
    *args: str,
    extra_env: dict[str, str] | None = None,
) -> CliResult:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEKEEPER_")}
    env |= {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "GATEKEEPER_PROXY__UPSTREAM_URL": upstream_url,
        **(extra_env or {}),
    }
    with tempfile.TemporaryDirectory(prefix="gk-cli-") as workdir:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gatekeeper.cli",
            "check",
            *args,
            cwd=workdir,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await process.communicate()
    assert process.returncode is not None
    return CliResult(process.returncode, out.decode(), err.decode())


def lines(result: CliResult) -> dict[str, str]:
    """Title → mark (✅/❌) of every check line."""
    found = {}
    for line in result.stdout.splitlines():
        mark, _, rest = line.partition(" ")
        if mark in ("✅", "❌"):
            found[rest.partition(":")[0]] = mark
    return found


async def _counts(pool: asyncpg.Pool) -> tuple[int, ...]:
    tables = ("users", "portfolio_protections", "protection_changes", "emergency_events")
    return tuple(
        [await pool.fetchval(f"SELECT count(*) FROM {table}") for table in tables]  # noqa: S608
    )


async def test_check_passes_on_a_ready_setup_and_changes_nothing(
    database_url: str, redis_url: str, paper_broker: Any, pg_pool: asyncpg.Pool
) -> None:
    await protect(pg_pool, "5WT00001", max_daily_trades=30)
    before = await _counts(pg_pool)

    result = await run_check(_with_password(database_url), redis_url, paper_broker.url)

    assert result.returncode == 0, result.stdout + result.stderr
    assert lines(result) == dict.fromkeys(TITLES, "✅"), result.stdout
    assert "5WT00001 (protection" in result.stdout
    assert "30 trades/day" in result.stdout
    assert "refused (" in result.stdout
    assert PASSWORD not in result.stdout + result.stderr
    # The constraint and stop checks ran in a rolled-back transaction.
    assert await _counts(pg_pool) == before


async def test_check_fails_when_redis_is_unreachable(
    database_url: str, private_redis: EmbeddedRedis, paper_broker: Any
) -> None:
    await asyncio.to_thread(private_redis.stop)

    result = await run_check(database_url, private_redis.url, paper_broker.url)

    assert result.returncode == 1
    marks = lines(result)
    assert marks.pop("Redis") == "❌", result.stdout
    assert set(marks.values()) == {"✅"}, result.stdout
    assert "NOT ready for trading" in result.stdout


async def test_check_fails_when_a_migration_is_missing(
    database_url: str, redis_url: str, paper_broker: Any, pg_pool: asyncpg.Pool
) -> None:
    newest = await pg_pool.fetchval("SELECT max(version) FROM schema_migrations")
    await pg_pool.execute("DELETE FROM schema_migrations WHERE version = $1", newest)

    result = await run_check(database_url, redis_url, paper_broker.url)

    assert result.returncode == 1
    assert lines(result)["Migrations"] == "❌", result.stdout
    assert f"{newest:04d}" in result.stdout
    assert "not applied" in result.stdout
    assert "gatekeeper migrate" in result.stdout


async def test_check_sends_a_test_alert_to_every_channel_and_prints_no_secret(
    database_url: str, redis_url: str, paper_broker: Any, pg_pool: asyncpg.Pool
) -> None:
    smtp, hooks = SmtpSink(), WebhookSink()
    await smtp.start()
    await hooks.start()
    token = "url-token-5d2c9e0a"  # chat webhooks carry a token in their URL
    webhooks = [
        {"name": "ops-json", "url": hooks.url(f"/json?token={token}"), "secret": SECRET},
        {"name": "ops-ntfy", "url": hooks.url("/ntfy"), "format": "ntfy"},
        # Nothing listens there: that channel is ❌, the others still ✅.
        {"name": "gone", "url": f"http://127.0.0.1:{free_port()}/{token}", "format": "slack"},
    ]
    email = {
        "host": "127.0.0.1",
        "port": smtp.port,
        "security": "none",
        "sender": "gatekeeper@example.com",
        "recipients": ["oncall@example.com"],
    }
    extra_env = {
        "GATEKEEPER_ALERTS__EMAIL": json.dumps(email),
        "GATEKEEPER_ALERTS__WEBHOOKS": json.dumps(webhooks),
    }
    try:
        result = await run_check(
            database_url, redis_url, paper_broker.url, "--send-test-alert", extra_env=extra_env
        )
    finally:
        await smtp.stop()
        await hooks.stop()

    assert result.returncode == 1, result.stdout + result.stderr
    marks = lines(result)
    assert {title: mark for title, mark in marks.items() if title.startswith("Alerts")} == {
        "Alerts (email)": "✅",
        "Alerts (webhook ops-json)": "✅",
        "Alerts (webhook ops-ntfy)": "✅",
        "Alerts (webhook gone)": "❌",
    }, result.stdout
    assert all(marks[title] == "✅" for title in TITLES), result.stdout
    assert "ClientConnectorError" in result.stdout
    printed = result.stdout + result.stderr
    for secret in (token, SECRET, hooks.url(""), "/json", "/ntfy"):
        assert secret not in printed
    # Delivered directly, once each: the real receivers got exactly one message.
    assert [mail.subject for mail in smtp.mails] == [
        "[gatekeeper] Test alert from gatekeeper check"
    ]
    assert smtp.mails[0].envelope_to == ["oncall@example.com"]
    (posted,) = hooks.at("/json")
    assert posted.signed
    assert posted.json()["kind"] == "test"
    assert posted.headers["X-Gatekeeper-Alert-Id"].startswith("test-")
    (ntfy,) = hooks.at("/ntfy")
    assert ntfy.headers["Title"] == "Test alert from gatekeeper check"
    # Not through the outbox: nothing left for the workers to deliver later.
    assert await pg_pool.fetchval("SELECT count(*) FROM alert_events") == 0


async def test_check_says_when_no_alert_channel_is_configured(
    database_url: str, redis_url: str, paper_broker: Any
) -> None:
    result = await run_check(database_url, redis_url, paper_broker.url, "--send-test-alert")

    assert result.returncode == 1
    marks = lines(result)
    assert marks.pop("Alerts") == "❌", result.stdout
    assert set(marks.values()) == {"✅"}, result.stdout
    assert "❌ Alerts: not configured" in result.stdout
    assert "NOT ready for trading" in result.stdout
