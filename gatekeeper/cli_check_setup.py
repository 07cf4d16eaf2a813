"""``gatekeeper check``: the guide's Step 10 (production readiness) and its Troubleshooting
section as one command to run before trading. One ✅/❌ line per check; exit status 1 when
any check fails. Nothing is changed: the constraint and emergency-stop checks run in a
transaction that is rolled back. No secret is printed (URLs lose their credentials, errors
are named by type). The Postgres checks are in :mod:`gatekeeper.cli_check_database`, what
every check shares in :mod:`gatekeeper.cli_check_report`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TextIO

import aiohttp
from redis.asyncio import Redis

from gatekeeper import alerts
from gatekeeper import cli_check_report as shared
from gatekeeper.cli_check_database import database_checks
from gatekeeper.orderpath.inputs import default_limits, risk_parameters
from gatekeeper.settings import Settings

Command = Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, int]]

# -- Redis, the broker, the rules, the alerts -------------------------------------------------


async def _redis(url: str) -> str:
    client = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        await client.ping()
        info = await client.info("server")
    finally:
        await client.aclose()
    return f"reachable at {shared.where(url)} (Redis {info.get('redis_version', '?')})"


async def _broker(upstream_url: str) -> str:
    """The upstream answers HTTP at all (any status: no credentials are sent)."""
    timeout = aiohttp.ClientTimeout(total=shared.CHECK_TIMEOUT_SECONDS - 1)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(upstream_url + "/", allow_redirects=False) as answer,
        ):
            return f"{upstream_url} answers (HTTP {answer.status})"
    except (aiohttp.ClientError, TimeoutError) as error:
        raise shared.CheckFailed(f"{upstream_url} unreachable ({type(error).__name__})") from None


async def _validation(settings: Settings) -> str:
    limits = (default_limits(settings.risk),)
    params = risk_parameters(settings.risk)
    refused = shared.decide(shared.OVERSIZED, limits, params)
    if refused.allowed:
        raise shared.CheckFailed("an order for 999,999 shares was ALLOWED")
    if not shared.decide(shared.SMALL, limits, params).allowed:
        raise shared.CheckFailed("a small order was refused too: the rules refuse everything")
    codes = ", ".join(code.value for code in refused.codes)
    return f"999,999 TEST refused ({codes}); 10 TEST allowed (the configured defaults)"


async def _alerts(report: shared.Report, settings: Settings) -> None:
    """One line per channel: the test message delivered (✅) or not (❌); ❌ with none."""
    limit = shared.CHECK_TIMEOUT_SECONDS
    try:
        async with asyncio.timeout(limit):
            results = await alerts.send_test_alert(settings, max_seconds=limit - 1)
    except Exception as error:  # a ❌ line, never a traceback
        report.line(False, f"Alerts: {shared.failure(error)}")
        return
    if not results:
        report.line(
            False,
            "Alerts: not configured (no [alerts.email] and no [[alerts.webhooks]]:"
            " see docs/alerts.md)",
        )
    for result in results:
        report.line(result.ok, f"Alerts ({result.channel}): {result.detail}")


# -- the command ------------------------------------------------------------------------------


async def run_checks(settings: Settings, *, send_test_alert: bool, out: TextIO) -> bool:
    """Print one line per check; True when every check passed."""
    report = shared.Report(out)
    await database_checks(report, settings)
    redis_url = settings.redis_url
    if redis_url is None:
        report.line(False, "Redis: redis_url is not set (REDIS_URL)")
    else:
        await shared.check(report, "Redis", lambda: _redis(redis_url.get_secret_value()))
    await shared.check(report, "Broker", lambda: _broker(settings.proxy.upstream_url))
    await shared.check(report, "Order validation", lambda: _validation(settings))
    if send_test_alert:
        await _alerts(report, settings)
    else:
        out.write("⏭  Alerts: not tried (--send-test-alert sends a test message)\n")
    return not report.failed


async def cmd_check(settings: Settings, args: argparse.Namespace) -> int:
    ok = await run_checks(settings, send_test_alert=args.send_test_alert, out=sys.stdout)
    print("Ready for trading." if ok else "NOT ready for trading: fix the ❌ lines above.")
    return 0 if ok else 1


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--send-test-alert",
        action="store_true",
        help="also send a test message through the configured alert channels",
    )


CHECK_SETUP_COMMANDS: dict[str, tuple[Command, str]] = {
    "check": (
        cmd_check,
        "before trading: Postgres, migrations, constraints, Redis, broker, protections,"
        " an emergency-stop round trip and a dry validation (changes nothing)",
    ),
}
CHECK_SETUP_ARGUMENTS: dict[str, Callable[[argparse.ArgumentParser], None]] = {
    "check": _arguments,
}
