"""``gatekeeper check``: the guide's Step 10 (production readiness) and its Troubleshooting
section as one command to run before trading. One ✅/❌ line per check; exit status 1 when
any check fails. Nothing is changed: the constraint and emergency-stop checks run in a
transaction that is rolled back. No secret is printed (URLs lose their credentials, errors
are named by type).
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TextIO
from urllib.parse import urlsplit

import aiohttp
import asyncpg
from redis.asyncio import Redis

from gatekeeper import alerts
from gatekeeper.adapters import protections as store
from gatekeeper.adapters import users
from gatekeeper.adapters.migrations import migration_status
from gatekeeper.core import AccountSnapshot, Decision, EvaluationContext, Limits, evaluate
from gatekeeper.core.parse import parse_order
from gatekeeper.core.snapshot import Quote, RiskParameters
from gatekeeper.limits import LIMITS, Limit
from gatekeeper.orderpath.inputs import default_limits, limits_of, risk_parameters
from gatekeeper.settings import Settings

Command = Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, int]]
CHECK_TIMEOUT_SECONDS = 10.0
ACTOR = store.Actor(name="gatekeeper check", via="cli")
# The guide's Step 10 order: a market buy of 999,999 shares.
OVERSIZED = {"symbol": "TEST", "quantity": 999999, "order_type": "market", "action": "buy-to-open"}
SMALL = {**OVERSIZED, "quantity": 10}
_NLV = Decimal("100000.00")


class CheckFailed(Exception):
    """A check's verdict: what is wrong, in words (never a secret)."""


@dataclass
class Report:
    """The lines printed so far and whether any failed."""

    out: TextIO
    failed: bool = False
    lines: list[str] = field(default_factory=list)

    def line(self, ok: bool, text: str, details: list[str] | None = None) -> None:
        self.failed |= not ok
        for item in [f"{'✅' if ok else '❌'} {text}", *(f"     {d}" for d in details or [])]:
            self.lines.append(item)
            self.out.write(item + "\n")
        self.out.flush()


def _where(url: str) -> str:
    """``host:port/database`` of a URL: no user, no password."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    return f"{host}{port}{parts.path or ''}"


def _failure(error: BaseException) -> str:
    if isinstance(error, CheckFailed):
        return str(error)
    if isinstance(error, TimeoutError):
        return f"no answer within {CHECK_TIMEOUT_SECONDS:g} s"
    return type(error).__name__  # an error's text may quote a URL or a credential


async def _check(report: Report, title: str, run: Callable[[], Awaitable[str]]) -> bool:
    """Run one check: ``run`` returns what it found (✅) or raises (❌)."""
    details: list[str] = []
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            found = await run()
    except Exception as error:  # every failure is a ❌ line, never a traceback
        report.line(False, f"{title}: {_failure(error)}")
        return False
    text, *details = found.split("\n")
    report.line(True, f"{title}: {text}", details)
    return True


# -- Postgres ---------------------------------------------------------------------------------


async def _postgres(conn: asyncpg.Connection, url: str) -> str:
    version = await conn.fetchval("SHOW server_version")
    return f"reachable at {_where(url)} (PostgreSQL {version})"


async def _migrations(conn: asyncpg.Connection) -> str:
    status = await migration_status(conn)
    problems = [
        *(f"{m.label} not applied" for m in status.pending),
        *(f"{m.label} edited after it was applied" for m in status.changed),
        *(f"{version:04d} applied but its file is gone" for version in status.missing),
    ]
    if problems:
        raise CheckFailed("not current: " + "; ".join(problems) + " (run `gatekeeper migrate`)")
    applied = await conn.fetchval("SELECT count(*) FROM schema_migrations")
    return f"current ({applied} applied)"


class _Rollback(Exception):
    """Ends a scratch transaction: everything in it is undone."""


async def _in_rollback(
    conn: asyncpg.Connection, work: Callable[[asyncpg.Connection], Awaitable[str]]
) -> str:
    """``work`` inside a transaction that is always rolled back."""
    found = ""
    try:
        async with conn.transaction():
            found = await work(conn)
            raise _Rollback
    except _Rollback:
        pass
    return found


async def _scratch_protection(conn: asyncpg.Connection) -> store.Protection:
    tag = secrets.token_hex(4)
    user = await users.create_user(conn, f"check-{tag}@gatekeeper.invalid", "gatekeeper check")
    return await store.create_protection(conn, user.id, f"GKCHECK-{tag}", {}, ACTOR)


def _out_of_range(limit: Limit) -> Decimal:
    return limit.lower - 1 if limit.lower_inclusive else limit.lower


async def _constraints(conn: asyncpg.Connection) -> str:
    protection = await _scratch_protection(conn)
    accepted = []
    for limit in LIMITS:
        try:
            async with conn.transaction():  # a savepoint: the failed UPDATE is undone alone
                await conn.execute(
                    f"UPDATE portfolio_protections SET {limit.field} = $1 WHERE id = $2",  # noqa: S608 - field names from gatekeeper.limits
                    _out_of_range(limit),
                    protection.id,
                )
        except asyncpg.CheckViolationError as error:
            if error.constraint_name != limit.constraint:
                accepted.append(f"{limit.field} refused by {error.constraint_name}")
            continue
        accepted.append(f"{limit.field} = {_out_of_range(limit)} accepted")
    if accepted:
        raise CheckFailed("NOT enforced: " + "; ".join(accepted))
    return f"enforced ({len(LIMITS)} out-of-range settings refused; rolled back)"


async def _stop_round_trip(conn: asyncpg.Connection) -> str:
    protection = await _scratch_protection(conn)
    stopped, changed = await store.trigger_emergency_stop(
        conn, protection.id, None, reason="gatekeeper check", triggered_by=ACTOR.name,
        mode=None, actor=ACTOR,
    )  # fmt: skip
    seen = await store.get_protection(conn, protection.id, None)
    if not (changed and seen.emergency_stop_active):
        raise CheckFailed("the stop did not become active")
    blocked = _decide(SMALL, (limits_of(seen),))
    if "emergency_stop" not in {code.value for code in blocked.codes}:
        raise CheckFailed("an order was not refused while the stop was active")
    await store.clear_emergency_stop(conn, protection.id, None, cleared_by=ACTOR.name, actor=ACTOR)
    cleared = await store.get_protection(conn, protection.id, None)
    if cleared.emergency_stop_active or not _decide(SMALL, (limits_of(cleared),)).allowed:
        raise CheckFailed("the stop did not clear")
    events = await conn.fetchval(
        "SELECT count(*) FROM emergency_events WHERE protection_id = $1", protection.id
    )
    if events != 2:
        raise CheckFailed(f"{events} emergency events recorded, not 2")
    return (
        f"triggered ({stopped.emergency_stop_active_mode}), refused an order, cleared,"
        " both events recorded (scratch protection, rolled back)"
    )


def _describe(protection: store.Protection) -> str:
    p = protection
    stop = (
        f"EMERGENCY STOP ACTIVE ({p.emergency_stop_active_mode}) since"
        f" {p.emergency_stop_triggered_at:%Y-%m-%d %H:%M %Z} by {p.emergency_stop_triggered_by}"
        if p.emergency_stop_triggered_at is not None
        else "no stop"
    )
    return (
        f"{p.account_id} (protection {p.id}): cash reserve {p.cash_reserve_percentage}%,"
        f" daily loss {p.max_daily_loss_percentage}%, single trade"
        f" {p.max_single_trade_percentage}%, exposure {p.max_portfolio_exposure_percentage}%,"
        f" concentration {p.max_position_concentration_percentage}%,"
        f" {p.max_daily_trades} trades/day; {stop}"
    )


async def _protections(conn: asyncpg.Connection, settings: Settings) -> str:
    found = await store.list_protections(conn, None)
    active = [p for p in found if p.active]
    risk = settings.risk
    others = (
        "accounts without one are guarded by the configured defaults"
        if risk.unknown_account_policy == "defaults"
        else "orders of accounts without one are rejected"
    )
    inactive = f", {len(found) - len(active)} inactive" if len(active) < len(found) else ""
    return "\n".join([f"{len(active)} active{inactive}; {others}", *(_describe(p) for p in active)])


# -- the rest ---------------------------------------------------------------------------------


async def _redis(url: str) -> str:
    client = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        await client.ping()
        info = await client.info("server")
    finally:
        await client.aclose()
    return f"reachable at {_where(url)} (Redis {info.get('redis_version', '?')})"


async def _broker(upstream_url: str) -> str:
    """The upstream answers HTTP at all (any status: no credentials are sent)."""
    timeout = aiohttp.ClientTimeout(total=CHECK_TIMEOUT_SECONDS - 1)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(upstream_url + "/", allow_redirects=False) as answer,
        ):
            return f"{upstream_url} answers (HTTP {answer.status})"
    except (aiohttp.ClientError, TimeoutError) as error:
        raise CheckFailed(f"{upstream_url} unreachable ({type(error).__name__})") from None


def _decide(
    order: dict[str, Any], limits: tuple[Limits, ...], params: RiskParameters | None = None
) -> Decision:
    """The pure core on a synthetic account: 100,000.00 in cash, TEST quoted 100.00/100.02."""
    now = datetime.now(UTC)
    snapshot = AccountSnapshot(
        account_number="GKCHECK",
        nlv=_NLV,
        cash_balance=_NLV,
        start_of_day_nlv=_NLV,
        fetched_at=now,
        quotes={"TEST": Quote("TEST", Decimal("100.00"), Decimal("100.02"), Decimal("100.01"))},
    )
    context = EvaluationContext(
        snapshot=snapshot,
        protections=limits,
        now=now,
        dry_run=True,
        params=params or RiskParameters(),
    )
    return evaluate(parse_order(order, allow_simple=True), context)


async def _validation(settings: Settings) -> str:
    limits = (default_limits(settings.risk),)
    params = risk_parameters(settings.risk)
    refused = _decide(OVERSIZED, limits, params)
    if refused.allowed:
        raise CheckFailed("an order for 999,999 shares was ALLOWED")
    if not _decide(SMALL, limits, params).allowed:
        raise CheckFailed("a small order was refused too: the rules refuse everything")
    codes = ", ".join(code.value for code in refused.codes)
    return f"999,999 TEST refused ({codes}); 10 TEST allowed (the configured defaults)"


async def _alerts(report: Report, settings: Settings) -> None:
    """One line per channel: the test message delivered (✅) or not (❌); ❌ with none."""
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            results = await alerts.send_test_alert(settings, max_seconds=CHECK_TIMEOUT_SECONDS - 1)
    except Exception as error:  # a ❌ line, never a traceback
        report.line(False, f"Alerts: {_failure(error)}")
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
    report = Report(out)
    await _database_checks(report, settings)
    redis_url = settings.redis_url
    if redis_url is None:
        report.line(False, "Redis: redis_url is not set (REDIS_URL)")
    else:
        await _check(report, "Redis", lambda: _redis(redis_url.get_secret_value()))
    await _check(report, "Broker", lambda: _broker(settings.proxy.upstream_url))
    await _check(report, "Order validation", lambda: _validation(settings))
    if send_test_alert:
        await _alerts(report, settings)
    else:
        out.write("⏭  Alerts: not tried (--send-test-alert sends a test message)\n")
    return not report.failed


_DB_CHECKS = ("Migrations", "CHECK constraints", "Protections", "Emergency stop")


async def _database_checks(report: Report, settings: Settings) -> None:
    if settings.database_url is None:
        report.line(False, "Postgres: database_url is not set (DATABASE_URL)")
        for title in _DB_CHECKS:
            report.line(False, f"{title}: not checked (no database)")
        return
    url = settings.database_url.get_secret_value()
    try:
        conn = await asyncpg.connect(url, timeout=CHECK_TIMEOUT_SECONDS)
    except Exception as error:  # reported, never raised: the other checks still run
        report.line(False, f"Postgres: unreachable at {_where(url)} ({_failure(error)})")
        for title in _DB_CHECKS:
            report.line(False, f"{title}: not checked (Postgres unreachable)")
        return
    try:
        await _check(report, "Postgres", lambda: _postgres(conn, url))
        if not await _check(report, "Migrations", lambda: _migrations(conn)):
            for title in _DB_CHECKS[1:]:
                report.line(False, f"{title}: not checked (schema not current)")
            return
        await _check(report, "CHECK constraints", lambda: _in_rollback(conn, _constraints))
        await _check(report, "Protections", lambda: _protections(conn, settings))
        await _check(report, "Emergency stop", lambda: _in_rollback(conn, _stop_round_trip))
    finally:
        await conn.close()


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
