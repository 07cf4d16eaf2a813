"""``gatekeeper serve``: look at the backends before listening, then serve.

What cannot fix itself stops start-up with one line (gatekeeper.cli_errors): a role Postgres
refuses, a database that is not migrated, a role without the service's privileges. What can
(a backend that is down or not yet up) lets the gatekeeper start not ready: ``/readyz``
answers 503 with the reason, a WARNING says so, and the backend is tried again until it
answers. The URLs themselves were checked when the settings were loaded.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Awaitable, Callable

import asyncpg
from redis import exceptions as redis_errors
from redis.asyncio import Redis

from gatekeeper.cli_errors import explain, postgres_target, redis_target
from gatekeeper.core import COMPILED
from gatekeeper.errors import GatekeeperError
from gatekeeper.settings import Settings

log = logging.getLogger("gatekeeper.startup")

CHECK_TIMEOUT_SECONDS = 5.0
RETRY_FIRST_SECONDS = 2.0
RETRY_MAX_SECONDS = 10.0
# What the service does on every order or call (sql/0004, 0020, 0021): missing any, it could
# start and then fail every order.
REQUIRED_PRIVILEGES = (
    ("schema_migrations", "SELECT"),
    ("portfolio_protections", "SELECT, UPDATE"),
    ("api_tokens", "SELECT, UPDATE"),
    ("risk_decisions", "SELECT, INSERT"),
    ("order_outcomes", "SELECT, INSERT"),
)
_DOWN: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.InterfaceError,
)


class StartupRefused(GatekeeperError):
    """A problem that waiting will not solve; the message is the one line to print."""

    code = "startup_refused"


async def _schema_problem(conn: asyncpg.Connection, settings: Settings) -> str | None:
    from gatekeeper.adapters.migrations import migration_status

    status = await migration_status(conn)
    where = f"Postgres at {postgres_target(settings)}"
    if status.pending:
        first = status.pending[0].label
        return (
            f"{where} has {len(status.pending)} migration(s) pending (first: {first}):"
            " run `gatekeeper migrate` (as the database's owner role)"
        )
    if status.changed or status.missing:
        return (
            f"{where}: the schema differs from sql/ (an applied migration file was edited or"
            " is missing): run `gatekeeper migrate --status`"
        )
    for table, privileges in REQUIRED_PRIVILEGES:
        for privilege in privileges.split(", "):
            if not await conn.fetchval(
                "SELECT has_table_privilege(current_user, $1, $2)", table, privilege
            ):
                role = await conn.fetchval("SELECT current_user")
                return (
                    f"{where}: role {role} lacks {privilege} on {table}: make it a member of"
                    f" gatekeeper_app (GRANT gatekeeper_app TO {role};"
                    " docs/admin.md#the-database-roles)"
                )
    return None


async def check_postgres(settings: Settings) -> str | None:
    """None when Postgres is ready for the service; the reason it is down (to retry) as a
    string; StartupRefused for what waiting will not fix."""
    assert settings.database_url is not None  # noqa: S101 - serve checks first
    try:
        conn = await asyncpg.connect(
            settings.database_url.get_secret_value(), timeout=CHECK_TIMEOUT_SECONDS
        )
    except _DOWN as error:
        return type(error).__name__
    except asyncpg.PostgresError as error:
        raise StartupRefused(explain(error, settings) or str(error)) from None
    try:
        problem = await _schema_problem(conn, settings)
    except asyncpg.PostgresError as error:
        raise StartupRefused(explain(error, settings) or str(error)) from None
    finally:
        await conn.close()
    if problem is not None:
        raise StartupRefused(problem)
    return None


async def check_redis(settings: Settings) -> str | None:
    """None when Redis answers PING; else why not (to retry). A refused password stops."""
    assert settings.redis_url is not None  # noqa: S101 - serve checks first
    client = Redis.from_url(
        settings.redis_url.get_secret_value(),
        socket_connect_timeout=CHECK_TIMEOUT_SECONDS,
        socket_timeout=CHECK_TIMEOUT_SECONDS,
    )
    try:
        await client.ping()
    except redis_errors.AuthenticationError:
        raise StartupRefused(
            f"Redis at {redis_target(settings)} refused the login: check REDIS_URL"
        ) from None
    except (redis_errors.RedisError, OSError) as error:
        return type(error).__name__
    finally:
        await client.aclose()
    return None


Check = Callable[[Settings], Awaitable[str | None]]


async def _until_up(name: str, where: str, check: Check, settings: Settings) -> None:
    """Try ``check`` until it passes, WARNING on each failure, longer and longer apart."""
    delay = RETRY_FIRST_SECONDS
    while True:
        await asyncio.sleep(delay)
        try:
            reason = await check(settings)
        except StartupRefused as error:  # reachable now, but not usable: say so and go on
            log.warning("%s (the gatekeeper stays not ready)", error.message)
            reason = "not usable"
        if reason is None:
            log.info("%s at %s is reachable now", name, where)
            return
        log.warning("%s at %s still unreachable (%s); retrying", name, where, reason)
        delay = min(delay * 2, RETRY_MAX_SECONDS)


async def preflight(settings: Settings) -> list[Awaitable[None]]:
    """Check both backends once; raise StartupRefused, or return the retries still to run
    for those that are down (each logged at WARNING here)."""
    retries: list[Awaitable[None]] = []
    for name, where, check in (
        ("Postgres", postgres_target(settings), check_postgres),
        ("Redis", redis_target(settings), check_redis),
    ):
        reason = await check(settings)
        if reason is not None:
            log.warning(
                "%s at %s is unreachable (%s): starting not ready (/readyz answers 503 until"
                " it is reachable); retrying",
                name,
                where,
                reason,
            )
            retries.append(_until_up(name, where, check, settings))
    return retries


async def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from gatekeeper.web.server import serve

    log.info("risk core: %s", "compiled (mypyc)" if COMPILED else "pure Python")
    retries: list[Awaitable[None]] = []
    if settings.database_url is not None and settings.redis_url is not None:
        retries = await preflight(settings)
    tasks = [asyncio.ensure_future(retry) for retry in retries]
    try:
        await serve(settings)
    finally:
        for task in tasks:
            task.cancel()
    return 0
